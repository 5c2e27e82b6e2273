"""``hailo-ort bench``: the JSON report, devices, inputs of the model's shapes, user errors."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from pipeline_models import two_partition_model

import hailo_ort
from hailo_ort.cli import main
from hailo_ort.cli.commands.bench import _Progress, random_feed
from hailo_ort.errors import ModelError
from hailo_ort.runtime.session import NodeArg

SHORT = ["--duration", "0.3", "--warmup", "0", "--json"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("bench")
    plain = folder / "model.onnx"
    onnx.save(two_partition_model(), plain)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hailo_ort.compile(
            str(plain),
            "hailo8",
            calibration="random",
            backend="emulate",
            progress=False,
            cache=False,
        )
    return plain, folder / "model.hailo.onnx"


def bench(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["bench", *argv, *SHORT]) == 0
    return json.loads(capsys.readouterr().out)


def check_schema(result: dict) -> None:
    for key in ("model", "device", "providers", "device_nodes", "batch", "inputs", "stages"):
        assert key in result
    lat = result["latency_ms"]
    assert lat["count"] >= 1
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    fps = result["throughput_fps"]
    assert fps["sequential"] > 0 and fps["pipelined"] > 0
    # throughput and latency measure the same requests
    seq = result["sequential"]
    assert fps["sequential"] == pytest.approx(seq["requests"] / seq["seconds"])
    assert result["pipelined"]["requests"] >= 1
    for stats in result["stages"].values():
        assert stats["count"] >= 1 and stats["mean_ms"] >= 0


def test_bench_a_hailo_model_on_the_emulator(capsys, models) -> None:
    _, compiled = models
    result = bench(
        capsys, str(compiled), "--device", "emulator", "--batch", "2", "--emulator-latency-ms", "2"
    )
    check_schema(result)
    assert result["device"] == "emulator" and result["batch"] == 2
    assert result["providers"][0] == "HailoExecutionProvider"
    assert len(result["device_nodes"]) == 2
    assert result["inputs"] == {"x": {"shape": [1, 3, 20, 20], "dtype": "float32"}}
    names = set(result["stages"])
    for node in result["device_nodes"]:
        assert {f"{node}:to_device", f"{node}:device", f"{node}:from_device"} <= names
    assert {"cpu0", "cpu1", "cpu2"} <= names
    # every request went through every stage once, and the device latency is inside
    counts = {s["count"] for s in result["stages"].values()}
    assert counts == {result["latency_ms"]["count"]}
    assert all(result["stages"][f"{n}:device"]["mean_ms"] >= 2 for n in result["device_nodes"])


def test_bench_auto_without_a_device_uses_the_emulator_for_emulated_models(capsys, models) -> None:
    _, compiled = models
    assert main(["bench", str(compiled), *SHORT]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["device"] == "emulator"
    assert "emulator" in captured.err


def test_bench_on_an_absent_hailort_device_is_an_error(capsys, models) -> None:
    _, compiled = models
    assert main(["bench", str(compiled), "--device", "hailort", *SHORT]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hailo-ort bench: error:") and "hailo" in err.lower()


def test_bench_on_the_cpu(capsys, models) -> None:
    plain, compiled = models
    result = bench(capsys, str(plain))
    check_schema(result)
    assert result["device"] == "cpu" and result["device_nodes"] == []
    assert list(result["stages"]) == ["onnxruntime"]
    result = bench(capsys, str(compiled), "--device", "cpu")
    assert result["device"] == "cpu" and "HailoExecutionProvider" not in result["providers"]


def test_bench_an_example_compiles_it_first(capsys) -> None:
    assert main(["bench", "example:mobilenet_v2", *SHORT]) == 0
    captured = capsys.readouterr()
    assert "compiling example:mobilenet_v2 with emulation" in captured.err
    result = json.loads(captured.out)
    check_schema(result)
    assert result["compiled_with_emulation"] is True and result["device"] == "emulator"


def test_bench_table_output(capsys, models) -> None:
    _, compiled = models
    assert (
        main(["bench", str(compiled), "--device", "emulator", "--duration", "0.2", "--warmup", "0"])
        == 0
    )
    out = capsys.readouterr().out
    assert "p50" in out and "p99" in out and "frames/s" in out and "HailoOp_0:device" in out


def dynamic_model(path: Path) -> None:
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "dyn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H", 5])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_dynamic_dims_need_input_shape(capsys, tmp_path: Path) -> None:
    path = tmp_path / "dyn.onnx"
    dynamic_model(path)
    assert main(["bench", str(path), *SHORT]) == 1
    err = capsys.readouterr().err
    assert "--input-shape x=" in err and "dynamic dimension 2" in err
    result = bench(capsys, str(path), "--input-shape", "x=4,3,7,5")
    assert result["inputs"]["x"]["shape"] == [4, 3, 7, 5]
    assert result["frames_per_request"] == 4


def test_user_errors_exit_1(capsys, tmp_path: Path) -> None:
    assert main(["bench", str(tmp_path / "missing.onnx"), *SHORT]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["bench", "example:nope", *SHORT]) == 1
    assert "unknown example" in capsys.readouterr().err
    assert main(["bench", "example:resnet18", "--batch", "0", *SHORT]) == 1


def test_random_feed_follows_types_and_shapes() -> None:
    inputs = [
        NodeArg("img", "tensor(uint8)", [None, 4, 4, 3]),
        NodeArg("ids", "tensor(int64)", [2, 3]),
    ]
    feed = random_feed(inputs, {})
    assert feed["img"].dtype == np.uint8 and feed["img"].shape == (1, 4, 4, 3)
    assert feed["ids"].dtype == np.int64 and feed["ids"].shape == (2, 3)
    with pytest.raises(ModelError, match="unknown input"):
        random_feed(inputs, {"nope": [1]})
    with pytest.raises(ModelError, match="does not fit"):
        random_feed(inputs, {"ids": [3, 3]})


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_line_only_on_a_terminal() -> None:
    for tty in (True, False):
        stream = _Stream(tty)
        progress = _Progress(stream)
        progress.show("latency", 12, 0.5, 1.0)
        progress.clear()
        text = stream.getvalue()
        assert ("latency: 12 requests" in text) is tty
        assert (text == "") is (not tty)
