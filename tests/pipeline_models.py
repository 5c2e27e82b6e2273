"""A model for the pipelining and bench tests: CPU segments around two device partitions."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import hailo_ort


def compile_emulated(model: onnx.ModelProto, **kwargs: Any) -> Any:
    """``hailo_ort.compile`` with the emulate backend and random calibration, uncached."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hailo_ort.compile(
            model,
            "hailo8",
            calibration="random",
            backend="emulate",
            progress=False,
            cache=False,
            **kwargs,
        )


def emulator(model: bytes | onnx.ModelProto, **options: Any) -> hailo_ort.InferenceSession:
    """A session on the emulator device with the given HailoExecutionProvider options."""
    return hailo_ort.InferenceSession(
        model,
        providers=[
            ("HailoExecutionProvider", {"device": "emulator", **options}),
            "CPUExecutionProvider",
        ],
    )


def two_partition_model() -> onnx.ModelProto:
    """CPU Resize → Conv/Relu (device) → CPU Resize → Conv/Relu (device) → CPU ArgMax, Resize.

    Cubic Resize is not supported on the device, so the model compiles to two partitions with
    CPU segments before, between and after them.
    """
    rng = np.random.default_rng(0)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def conv(x: str, cin: int, cout: int, name: str) -> str:
        w = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2 / (cin * 9))).astype(np.float32)
        b = np.zeros(cout, np.float32)
        nodes.append(
            helper.make_node(
                "Conv", [x, const(f"{name}_w", w), const(f"{name}_b", b)], [name], pads=[1] * 4
            )
        )
        nodes.append(helper.make_node("Relu", [name], [f"{name}_r"], name=f"{name}_relu"))
        nodes[-2].name = name
        return f"{name}_r"

    def resize(x: str, sizes: list[int], out: str) -> None:
        s = const(f"{out}_sizes", np.array(sizes, np.int64))
        nodes.append(helper.make_node("Resize", [x, "", "", s], [out], mode="cubic", name=out))

    resize("x", [1, 3, 16, 16], "pre")
    a = conv("pre", 3, 8, "c1")
    resize(a, [1, 8, 12, 12], "mid")
    b = conv("mid", 8, 4, "c2")
    nodes.append(helper.make_node("ArgMax", [b], ["y"], axis=1, keepdims=0, name="argmax"))
    resize(b, [1, 4, 8, 8], "z")
    graph = helper.make_graph(
        nodes,
        "two_partitions",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 20, 20])],
        [
            helper.make_tensor_value_info("y", TensorProto.INT64, [1, 12, 12]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4, 8, 8]),
        ],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
