"""The scripts in examples/ run as they stand (in a subprocess, small settings), and the helpers
they rely on behave."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hailo_ort.errors import ModelError
from hailo_ort.zoo import synthetic_images

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(script: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HAILO_ORT_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("HAILO_DFC_PYTHON", None)
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )


def test_classify_example(tmp_path) -> None:
    proc = _run("classify.py", "--count", "3", "--calib-count", "16", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "with the emulate backend" in out and "not the Hailo compiler" in out
    assert "providers: HailoExecutionProvider, CPUExecutionProvider" in out
    rows = re.findall(r"image \d: hailo-ort top-5 \[([\d, ]+)\].*float top-5 \[([\d, ]+)\]", out)
    assert len(rows) == 3 and all(len(a.split(",")) == 5 for a, _ in rows)
    agree = re.search(r"top-1 agreement: (\d)/3; top-5 overlap: (\d+)%", out)
    assert agree and int(agree.group(2)) >= 60  # 8-bit emulation keeps most of the top-5
    assert list(tmp_path.glob("*.onnx")) == []  # compiled in memory


def test_classify_example_on_a_model_file(tmp_path) -> None:
    from hailo_ort.zoo import get_example

    path = tmp_path / "net.onnx"
    path.write_bytes(get_example("mobilenet_v2").SerializeToString())
    np.save(tmp_path / "images.npy", synthetic_images(2, (3, 112, 112), seed=5))
    proc = _run(
        "classify.py", "--model", str(path), "--images", "images.npy", "--calib-count", "8",
        tmp_path=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert len(re.findall(r"^image \d:", proc.stdout, re.M)) == 2


def test_classify_example_reports_errors_on_one_line(tmp_path) -> None:
    proc = _run("classify.py", "--model", "missing.onnx", tmp_path=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("classify: error:") and "missing.onnx" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_detect_yolov8_example(tmp_path) -> None:
    proc = _run("detect_yolov8.py", "--calib-count", "16", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "device part:" in out and out.count("/model.22/cv") == 6
    assert "cpu (numpy): DFL decode, box decode, class sigmoid, NMS (80 classes)" in out
    assert "providers: HailoExecutionProvider, CPUExecutionProvider" in out
    tail = re.search(r"vs the model's ONNX tail \(float\): max abs diff ([\d.e+-]+)", out)
    assert tail and float(tail.group(1)) < 1e-3  # the numpy decode is the model's own math
    dets = re.findall(r"^  class +\d+  score ([\d.]+)  box \[", out, re.M)
    assert dets and all(float(s) >= 0.5 for s in dets)
    summary = re.search(r"vs float: (\d+)/(\d+) float detections matched", out)
    assert summary and int(summary.group(2)) > 0
    assert int(summary.group(1)) >= int(summary.group(2)) // 2


def test_detect_yolov8_rejects_a_non_yolo_model(tmp_path) -> None:
    proc = _run("detect_yolov8.py", "--model", "example:resnet18", tmp_path=tmp_path)
    assert proc.returncode == 1 and "six YOLOv8 head convs" in proc.stderr


def test_synthetic_images_are_deterministic_image_like() -> None:
    a = synthetic_images(3, (3, 32, 48), seed=4)
    assert a.shape == (3, 3, 32, 48) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, synthetic_images(3, (3, 32, 48), seed=4))
    assert not np.array_equal(a, synthetic_images(3, (3, 32, 48), seed=5))
    # structured, not noise: neighbouring pixels are close most of the time
    step = np.abs(np.diff(a, axis=3))
    assert np.median(step) < 0.05
    with pytest.raises(ModelError, match="count must be positive"):
        synthetic_images(0)
    with pytest.raises(ModelError, match=r"shape must be \(C, H, W\)"):
        synthetic_images(1, (32, 32))
