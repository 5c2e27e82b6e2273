"""compile() and `hailo-ort compile`, end to end, with the real neighbouring stages (inspect:
graph + partition; embed: the HailoOp writer). Tests that need a particular partitioning set
it through the ``partitions`` fixture (the real inspect, its partitions replaced).
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from compile_models import convnet_partition, image_feeds, small_convnet

import hailo_ort.compile as compile_module
from hailo_ort.cli import main
from hailo_ort.compile import Progress, compile
from hailo_ort.compile.calibration import CalibrationWarning
from hailo_ort.errors import ArchError, CalibrationError, CompileError

FAKE_DFC_DIR = Path(__file__).parent / "fake_hailo_sdk_client"

# Small calibration sets are the point of these tests; the warning is tested in test_cli_compile.
pytestmark = pytest.mark.filterwarnings("ignore::hailo_ort.compile.calibration.CalibrationWarning")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("HAILO_ORT_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # failed DFC workdirs
    monkeypatch.delenv("HAILO_DFC_PYTHON", raising=False)


@pytest.fixture
def partitions(monkeypatch):
    """The real inspect, with its partitions replaced by ``partitions.partitions`` when set."""
    state = SimpleNamespace(partitions=None)
    real_inspect = compile_module._inspect

    def inspect_with_partitions(*args):
        result = real_inspect(*args)
        if state.partitions is not None:
            result.partitions = list(state.partitions)
        return result

    monkeypatch.setattr(compile_module, "_inspect", inspect_with_partitions)
    return state


def _hailo_ops(model: onnx.ModelProto) -> list:
    import hailo_ort.hailoop

    return hailo_ort.hailoop.read(model)


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "net.onnx"
    onnx.save(small_convnet(), str(path))
    calib = tmp_path / "calib.npy"
    np.save(calib, np.concatenate([f["x"] for f in image_feeds(20)]))
    return SimpleNamespace(path=path, calib=calib, out=tmp_path / "net.hailo.onnx")


def _no_dfc(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "hailo_sdk_client" else real(name, *a),
    )


def test_emulate_compile_writes_model_and_uses_cache(model_file) -> None:
    res = compile(model_file.path, "hailo8l", calibration=model_file.calib, backend="emulate")
    assert res.path == model_file.out and model_file.out.exists()
    written = onnx.load(str(model_file.out))
    (op,) = _hailo_ops(written)
    assert list(op.vstream_map) == ["small_convnet_p0/xn", "small_convnet_p0/logits"]
    assert op.flavour == "portable" and op.has_fallback
    assert op.compiled.partition.nodes == convnet_partition("classifier").nodes
    assert [n.op_type for n in written.graph.node] == ["Mul", "HailoOp", "Softmax"]
    (part,) = res.partitions
    assert not part.cache_hit and part.backend == "emulate" and part.payload_bytes > 0
    assert part.compiled.report["accuracy"]["logits"]["cosine"] > 0.99
    assert res.calibration_samples == 20
    assert "not the Hailo compiler" in res.summary
    assert "accuracy vs float (4 held-out) logits: cosine" in res.summary
    assert "cpu: 2 nodes: norm (Mul), softmax (Softmax)" in res.summary
    assert "compiled in" in res.summary

    again = compile(model_file.path, "hailo8l", calibration=model_file.calib, backend="emulate")
    assert again.partitions[0].cache_hit
    assert again.partitions[0].compiled.emulation == part.compiled.emulation
    assert "cache hit" in again.summary
    # a change of calibration data is a different compilation
    np.save(model_file.calib, np.concatenate([f["x"] for f in image_feeds(20, seed=9)]))
    third = compile(model_file.path, "hailo8l", calibration=model_file.calib, backend="emulate")
    assert not third.partitions[0].cache_hit


def test_no_cache(model_file, tmp_path) -> None:
    for _ in range(2):
        res = compile(
            model_file.path, "hailo8", calibration=model_file.calib, backend="emulate", cache=False
        )
        assert not res.partitions[0].cache_hit
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.json"))


def test_auto_without_dfc_falls_back_to_emulation(model_file, monkeypatch) -> None:
    _no_dfc(monkeypatch)
    res = compile(model_file.path, "hailo8l", calibration=model_file.calib, output=model_file.out)
    assert res.backend == "emulate"
    assert "no Hailo DFC found" in res.summary


def test_cli_says_no_dfc_once(model_file, monkeypatch, capsys) -> None:
    # It used to be printed twice: as a log line on stderr and in the summary on stdout.
    _no_dfc(monkeypatch)
    argv = ["compile", str(model_file.path), "--arch", "hailo8l", "--no-progress"]
    assert main([*argv, "--calib", str(model_file.calib), "-o", str(model_file.out)]) == 0
    captured = capsys.readouterr()
    assert (captured.out + captured.err).count("no Hailo DFC found") == 1


@pytest.mark.parametrize(("limit", "used"), [("0", 20), ("5", 5)])
def test_cli_calib_limit(model_file, capsys, limit, used) -> None:
    argv = ["compile", str(model_file.path), "--arch", "hailo8l", "--backend", "emulate"]
    argv += ["--calib", str(model_file.calib), "--calib-limit", limit, "-o", str(model_file.out)]
    assert main([*argv, "--no-cache", "--no-progress"]) == 0
    assert f"calibration: {used} samples" in capsys.readouterr().out


def test_cli_negative_calib_limit_is_an_error(model_file, capsys) -> None:
    # -3 used to mean "all samples", silently.
    argv = ["compile", str(model_file.path), "--arch", "hailo8l", "--backend", "emulate"]
    argv += ["--calib", str(model_file.calib), "--calib-limit", "-3", "-o", str(model_file.out)]
    assert main([*argv, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "calibration limit must be a positive number" in err and "-3" in err
    assert not model_file.out.exists()


def test_modelproto_in_memory() -> None:
    feeds = image_feeds(8)
    res = compile(small_convnet(), "hailo8", calibration=feeds, backend="emulate")
    assert res.path is None and isinstance(res.model, onnx.ModelProto)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"arch": "hailo9"}, ArchError, "unknown arch 'hailo9'"),
        ({"calibration": None}, CalibrationError, "calibration data is required"),
        ({"backend": "magic"}, CompileError, "unknown backend"),
        ({"flavour": "odd"}, CompileError, "unknown flavour"),
        ({"optimization_level": 7}, CompileError, "not in 0..4"),
        (
            {"model_script": "missing.alls"},
            CompileError,
            "model script missing.alls does not exist",
        ),
        ({"backend": "dfc"}, CompileError, "HAILO_DFC_PYTHON"),
        ({"flavour": "fork"}, CompileError, "fork flavour.*needs HEFs.*--flavour portable"),
        ({"flavour": "fork", "backend": "auto"}, CompileError, "fork flavour.*no DFC was found"),
    ],
)
def test_bad_input_writes_nothing(model_file, monkeypatch, kwargs, error, pattern) -> None:
    _no_dfc(monkeypatch)
    args = {"arch": "hailo8l", "calibration": model_file.calib, "backend": "emulate"}
    args.update(kwargs)
    with pytest.raises(error, match=pattern):
        compile(model_file.path, **args)
    assert not model_file.out.exists()


def test_mismatched_calibration(model_file, tmp_path) -> None:
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((4, 3, 32, 32), np.float32))
    with pytest.raises(CalibrationError, match=r"input 'x'.*\[1, 3, 16, 16\]"):
        compile(model_file.path, "hailo8l", calibration=bad, backend="emulate")
    assert not model_file.out.exists()


def test_empty_partition_list(partitions, model_file) -> None:
    partitions.partitions = []
    with pytest.raises(CompileError, match="nothing to put on the device"):
        compile(model_file.path, "hailo8l", calibration=model_file.calib, backend="emulate")
    assert not model_file.out.exists()


def test_failing_dfc_writes_nothing(model_file, tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "fake.json"
    cfg.write_text(json.dumps({"fail": "unsupported", "node": "conv2"}))
    monkeypatch.setenv("PYTHONPATH", str(FAKE_DFC_DIR))
    monkeypatch.setenv("FAKE_DFC_CONFIG", str(cfg))
    with pytest.raises(CompileError, match="cannot translate node 'conv2'"):
        compile(
            model_file.path,
            "hailo8l",
            calibration=model_file.calib,
            backend="dfc",
            dfc_python=sys.executable,
        )
    assert not model_file.out.exists()
    (workdir,) = (tmp_path / "tmp").glob("hailo-ort-dfc-*")  # kept for its log...
    assert (workdir / "dfc.log").exists() and (workdir / "job.json").exists()
    assert not list(workdir.glob("calib_*.npy"))  # ...without the calibration set


def test_cli_compile(model_file, capsys) -> None:
    out = model_file.path.with_name("custom.onnx")
    warnings.simplefilter("always", CalibrationWarning)
    code = main(
        [
            "compile",
            str(model_file.path),
            "--arch",
            "hailo8l",
            "--calib",
            str(model_file.calib),
            "--backend",
            "emulate",
            "-o",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0 and out.exists()
    assert "hailo8l" in captured.out and "partition 0" in captured.out
    assert "only 20 calibration samples" in captured.err  # warned on stderr, one line


def test_cli_errors_are_one_line(model_file, capsys, monkeypatch) -> None:
    _no_dfc(monkeypatch)
    code = main(["compile", str(model_file.path), "--arch", "hailo9", "--calib", "random"])
    err = capsys.readouterr().err
    assert code == 1 and "unknown arch" in err and err.count("\n") == 1
    code = main(
        [
            "compile",
            str(model_file.path),
            "--arch",
            "hailo8",
            "--backend",
            "dfc",
            "--calib",
            "random",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "--dfc-python" in err
    assert not model_file.out.exists()


def test_progress_only_on_a_tty() -> None:
    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        p = Progress(True, stream)
        p.stage("DFC optimize")
        p.bar(5, 10, "calibration images")
        p.done()
    assert "DFC optimize" in tty.getvalue()
    assert "[###############...............] 5/10" in tty.getvalue()
    assert pipe.getvalue() == ""
    ticking = Tty()
    p = Progress(True, ticking)
    p.stage("DFC optimize")
    time.sleep(1.3)  # the ticker refreshes the elapsed time once a second
    p.done()
    assert "DFC optimize ... 1 s" in ticking.getvalue()
    off = Tty()
    Progress(False, off).stage("x")
    assert off.getvalue() == ""


# --- the examples, end to end ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "yolov8n"])
def test_end_to_end_real_stages(name, tmp_path) -> None:
    import onnxruntime as ort

    from hailo_ort import zoo

    src = zoo.get_example(name)
    src_path = Path(src) if isinstance(src, (str, os.PathLike)) else tmp_path / f"{name}.onnx"
    if not isinstance(src, (str, os.PathLike)):
        onnx.save(src, str(src_path))
    out = tmp_path / f"{name}.hailo.onnx"
    with pytest.warns(UserWarning):
        res = compile(src_path, "hailo8l", calibration="random", backend="emulate", output=out)
    assert out.exists() and res.partitions
    model = onnx.load(str(out))
    assert any(n.op_type == "HailoOp" and n.domain == "ai.hailo" for n in model.graph.node)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    feed = {
        i.name: np.random.default_rng(0)
        .random([d if isinstance(d, int) else 1 for d in i.shape])
        .astype(np.float32)
        for i in sess.get_inputs()
    }
    sess.run(None, feed)


# --- the DFC backend through compile(), with the fake DFC -----------------------------------


@pytest.mark.parametrize("recommend", [False, True])
def test_dfc_backend_through_compile(partitions, tmp_path, monkeypatch, recommend) -> None:
    from compile_models import arcface_feeds, arcface_like, arcface_normalization, arcface_partition
    from test_compile_dfc import hef_fixture

    hef_path = hef_fixture()
    partitions.partitions = [arcface_partition()]
    model_path = tmp_path / "arc.onnx"
    onnx.save(arcface_like(), str(model_path))
    cfg = {"hef": str(hef_path), "record": str(tmp_path / "rec.json")}
    if recommend:
        cfg.update(fail="recommend", recommend=["MatMul_95"])
    (tmp_path / "fake.json").write_text(json.dumps(cfg))
    monkeypatch.setenv("PYTHONPATH", str(FAKE_DFC_DIR))
    monkeypatch.setenv("FAKE_DFC_CONFIG", str(tmp_path / "fake.json"))
    monkeypatch.setenv("HAILO_DFC_PYTHON", sys.executable)
    real_inspect = compile_module._inspect

    def with_normalization(*args):
        result = real_inspect(*args)
        result.normalization = [arcface_normalization()]
        return result

    monkeypatch.setattr(compile_module, "_inspect", with_normalization)
    feeds = arcface_feeds(6)
    res = compile(
        model_path,
        "hailo8",
        calibration=feeds,
        model_script="performance_param(compiler_optimization_level=max)",
    )
    assert res.backend == "dfc" and (tmp_path / "arc.hailo.onnx").exists()
    (part,) = res.partitions
    assert part.compiled.hef == hef_path.read_bytes()
    assert [s.vstream for s in part.compiled.outputs] == ["arcface_mobilefacenet/fc1"]
    assert part.compiled.outputs[0].quant.zp == 144
    rec = json.loads((tmp_path / "rec.json").read_text())
    assert (
        "normalization1 = normalization([127.5, 127.5, 127.5], [128, 128, 128])"
        in rec["scripts"][0]
    )
    assert "performance_param(compiler_optimization_level=max)" in rec["scripts"][0]
    assert rec["calib"] == {"input_layer1": [6, 112, 112, 3]}
    assert "backend: dfc (3.99.0+fake)" in res.summary
    if recommend:
        assert part.compiled.partition.end_nodes == ["MatMul_95"]
        assert [t.name for t in part.compiled.partition.outputs] == ["mm"]
        assert (
            "end nodes changed by the DFC: ['BatchNormalization_96'] -> ['MatMul_95']"
            in res.summary
        )
    else:
        assert [t.name for t in part.compiled.partition.outputs] == ["fc1"]
    # the second run is served from the cache, without the DFC
    (tmp_path / "fake.json").write_text(json.dumps({"fail": "crash"}))
    again = compile(
        model_path,
        "hailo8",
        calibration=feeds,
        model_script="performance_param(compiler_optimization_level=max)",
    )
    assert again.partitions[0].cache_hit
    assert again.partitions[0].compiled.hef == part.compiled.hef


def test_hailo_ort_compile_is_callable_whatever_was_imported_first() -> None:
    import hailo_ort
    import hailo_ort.compile.emulate  # sets the attribute hailo_ort.compile to the package

    res = hailo_ort.compile(
        small_convnet(), "hailo8", calibration=image_feeds(6), backend="emulate"
    )
    assert res.partitions[0].backend == "emulate"


def test_two_partitions_each_compiled_and_cached(partitions, model_file) -> None:
    from hailo_ort.partition.types import Partition, TensorSpec

    partitions.partitions = [
        Partition(0, ["conv1", "relu1"], ["conv1"], ["relu1"],
                  [TensorSpec("xn", [1, 3, 16, 16], "float32")],
                  [TensorSpec("r1", [1, 8, 16, 16], "float32")]),
        Partition(1, ["gap", "flatten", "fc"], ["gap"], ["fc"],
                  [TensorSpec("r2", [1, 16, 16, 16], "float32")],
                  [TensorSpec("logits", [1, 10], "float32")]),
    ]  # fmt: skip
    res = compile(model_file.path, "hailo8l", calibration=model_file.calib, backend="emulate")
    names = [[s.vstream for s in p.compiled.inputs + p.compiled.outputs] for p in res.partitions]
    assert names == [
        ["small_convnet_p0/xn", "small_convnet_p0/r1"],
        ["small_convnet_p1/r2", "small_convnet_p1/logits"],
    ]
    assert "partition 1: 3 nodes" in res.summary
    assert all(p.compiled.report["accuracy"] for p in res.partitions)
    # only the changed partition is recompiled
    partitions.partitions[1] = Partition(
        1, ["flatten", "fc"], ["flatten"], ["fc"],
        [TensorSpec("gap", [1, 16, 1, 1], "float32")],
        [TensorSpec("logits", [1, 10], "float32")],
    )  # fmt: skip
    again = compile(model_file.path, "hailo8l", calibration=model_file.calib, backend="emulate")
    assert [p.cache_hit for p in again.partitions] == [True, False]
