"""Every ``hailo-ort`` subcommand reports file problems (unwritable output, missing input) on
one line with exit code 1, never as a traceback."""

from __future__ import annotations

import os

import onnx
import pytest
from compile_models import small_convnet

from hailo_ort.cli import main


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "net.onnx"
    onnx.save(small_convnet(), str(path))
    return path


@pytest.fixture(scope="module")
def compiled_path(tmp_path_factory, model_path):
    out = tmp_path_factory.mktemp("compiled") / "net.hailo.onnx"
    argv = ["compile", str(model_path), "--arch", "hailo8", "--backend", "emulate"]
    argv += ["--calib", "random", "--no-cache", "--no-progress", "-o", str(out)]
    assert main(argv) == 0
    return out


def one_line_error(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1, err
    lines = [ln for ln in err.strip().splitlines() if ": error: " in ln]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_compile_output_is_a_folder(capsys, monkeypatch, tmp_path, model_path):
    import hailo_ort.compile

    def must_not_compile(*args, **kwargs):
        raise AssertionError("compiled although the output cannot be written")

    monkeypatch.setattr(hailo_ort.compile, "compile", must_not_compile)  # checked before work
    folder = tmp_path / "adir"
    folder.mkdir()
    argv = ["compile", str(model_path), "--arch", "hailo8", "--backend", "emulate"]
    argv += ["--calib", "random", "--no-cache", "--no-progress", "-o", str(folder)]
    line = one_line_error(capsys, argv)
    assert line.startswith("hailo-ort compile: error:")
    assert str(folder) in line and "folder" in line
    assert list(folder.iterdir()) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_inspect_html_in_an_unwritable_place(capsys, model_path):
    argv = ["inspect", str(model_path), "--arch", "hailo8", "--html", "/proc/report.html"]
    line = one_line_error(capsys, argv)
    assert line.startswith("hailo-ort inspect: error: cannot write /proc/report.html")


def test_inspect_html_is_a_folder(capsys, tmp_path, model_path):
    line = one_line_error(
        capsys, ["inspect", str(model_path), "--arch", "hailo8", "--html", str(tmp_path)]
    )
    assert str(tmp_path) in line and "folder" in line


def test_hailoop_strip_to_a_folder(capsys, tmp_path, compiled_path):
    line = one_line_error(capsys, ["hailoop", "strip", str(compiled_path), str(tmp_path)])
    assert line.startswith("hailo-ort hailoop: error: cannot write")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["inspect", "compile", "bench", "hailoop-show", "parse-hef"])
def test_missing_input_file(capsys, tmp_path, command):
    missing = tmp_path / "nope.onnx"
    argv = {
        "inspect": ["inspect", str(missing), "--arch", "hailo8"],
        "compile": ["compile", str(missing), "--arch", "hailo8", "--calib", "random"],
        "bench": ["bench", str(missing)],
        "hailoop-show": ["hailoop", "show", str(missing)],
        "parse-hef": ["parse-hef", str(tmp_path / "nope.hef")],
    }[command]
    line = one_line_error(capsys, argv)
    assert "nope." in line


def test_stray_os_error_is_one_line(capsys, monkeypatch, model_path):
    """An OSError no layer below turned into a HailoOrtError still gets one line, not a trace."""
    import hailo_ort.cli.commands.inspect as inspect_cmd

    def boom(args):
        raise PermissionError(13, "Permission denied", "/some/file.bin")

    monkeypatch.setattr(inspect_cmd, "run", boom)  # register() looks run up when it is called
    line = one_line_error(capsys, ["inspect", str(model_path), "--arch", "hailo8"])
    assert line == "hailo-ort inspect: error: /some/file.bin: Permission denied"
