"""``hailo-ort demo``: placement, compile, device, accuracy and throughput on a built-in example."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile

import pytest
from fake_devices import FaultyDevice, install_fake_hailort

from hailo_ort.cli import main


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("HAILO_ORT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HAILO_DFC_PYTHON", raising=False)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))


def _no_hailort(monkeypatch) -> None:
    install_fake_hailort(monkeypatch, None)


def test_demo_text_report(monkeypatch, capsys, tmp_path) -> None:
    _no_hailort(monkeypatch)
    assert main(["demo", "--example", "mobilenet_v2", "--runs", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("hailo-ort demo: example:mobilenet_v2 [1, 3, 112, 112] -> hailo8l\n")
    placement = re.search(
        r"placement: (\d+)/(\d+) nodes on the device in 1 partition\(s\), ([\d.]+)% of FLOPs; "
        r"CPU: 3 nodes \(Div, Softmax, Sub\)",
        out,
    )
    assert placement and int(placement.group(1)) + 3 == int(placement.group(2))
    assert 90.0 < float(placement.group(3)) <= 100.0
    assert "note: this is a demo: calibrated on 64 synthetic images, not real data" in out
    assert "compile: emulate (no Hailo DFC found" in out
    # without --out the model lives in a temporary folder, and the line says so
    assert "-> mobilenet_v2.hailo.onnx (in a temporary folder; --out DIR keeps it)" in out
    assert "device: the emulator" in out
    acc = re.search(r"  probs: cosine ([\d.]+), SNR ([\d.-]+) dB, max abs error ([\d.e-]+)", out)
    assert acc and 0.9 < float(acc.group(1)) <= 1.0 and float(acc.group(3)) > 0
    assert re.search(r"  hailo-ort \(emulator\): [\d.]+ ms/run, [\d.]+ FPS", out)
    assert re.search(r"  onnxruntime float \(CPU\): [\d.]+ ms/run, [\d.]+ FPS", out)
    assert "says nothing about a Hailo device's" in out
    assert not list((tmp_path / "tmp").iterdir())  # the temp dir is gone


def test_demo_json_and_out_dir(monkeypatch, capsys, tmp_path) -> None:
    _no_hailort(monkeypatch)
    out_dir = tmp_path / "artifacts"
    assert (
        main(["demo", "--example", "resnet18", "--runs", "3", "--json", "--out", str(out_dir)]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["example"] == "resnet18" and report["arch"] == "hailo8l"
    assert report["placement"]["partitions"] == 1
    assert report["placement"]["cpu_ops"] == ["Div", "Softmax", "Sub"]
    assert report["compile"]["backend"] == "emulate" and report["compile"]["cache_hit"] is False
    assert "synthetic" in report["compile"]["calibration"]
    assert report["device"] == "emulator"
    assert report["providers"] == ["HailoExecutionProvider", "CPUExecutionProvider"]
    metrics = report["accuracy"]["outputs"]["probs"]
    assert 0.0 < metrics["cosine"] <= 1.0 and metrics["max_abs_error"] > 0
    assert report["accuracy"]["held_out_inputs"] == 8
    tp = report["throughput"]
    assert tp["runs"] == 3 and tp["hailo_ort_ms"] > 0 and tp["onnxruntime_float_ms"] > 0
    assert abs(tp["hailo_ort_fps"] * tp["hailo_ort_ms"] - 1000) < 1e-6
    assert (out_dir / "resnet18.onnx").is_file() and (out_dir / "resnet18.hailo.onnx").is_file()
    assert report["models"]["hailo"] == str(out_dir / "resnet18.hailo.onnx")
    assert any(line.startswith("note: this is a demo") for line in report["notes"])
    # the second demo finds the compiled partition in the cache
    assert main(["demo", "--example", "resnet18", "--runs", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["compile"]["cache_hit"] is True


def test_demo_default_is_yolov8n(monkeypatch, capsys) -> None:
    _no_hailort(monkeypatch)
    assert main(["demo", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "example:yolov8n [1, 3, 160, 160]" in out
    assert re.search(r"placement: 195/219 nodes on the device in 1 partition\(s\)", out)
    assert re.search(r"  output0: cosine 0\.9\d+", out) or "output0: cosine 1.0000" in out


def test_demo_with_a_hailo_device_present_still_runs_emulated_models_on_the_emulator(
    monkeypatch, capsys
) -> None:
    device = FaultyDevice()
    install_fake_hailort(monkeypatch, device)
    assert main(["demo", "--example", "mobilenet_v2", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "a Hailo device is present but emulated models carry no HEF" in out
    assert device.closed  # the probe released it


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--runs", "0"], "--runs must be at least 1"),
        (["--out", "FILE"], "exists and is not a folder"),
    ],
)
def test_demo_user_errors_are_one_line(argv, message, capsys, tmp_path) -> None:
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    argv = [str(afile) if a == "FILE" else a for a in argv]
    assert main(["demo", *argv]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_demo_unknown_example_is_refused_by_argparse(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hailo_ort", "demo", "--example", "vgg"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "invalid choice: 'vgg'" in proc.stderr
