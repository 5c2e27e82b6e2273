"""Would binding a CPU segment's outputs to page-aligned buffers (ORT IOBinding) save anything?

A CPU segment that feeds a device step hands its float output to ``transforms.to_device``,
which writes the quantized, re-laid-out tensor into a pooled page-aligned buffer (the one the
device reads). This script times, for one CPU segment (Relu over a 1x3x640x640 float32 tensor,
one intra-op thread):

* ``run``            ``session.run``: onnxruntime allocates the output from its arena and hands
  it to numpy without a copy (the array's base is a capsule over ORT's buffer);
* ``bind fresh``     IOBinding with the output bound to a new page-aligned buffer per run (what
  passing buffers downstream without lifetime tracking needs);
* ``bind reused``    IOBinding into one page-aligned buffer reused every run (needs the plan to
  know when every reader, including a device request's CPU fallback, is done with it);
* ``to_device``      the transform that follows in both cases, for scale.

It also checks that the bound output really is the buffer ORT wrote (address equality).

    python benchmarks/iobinding.py [--repeat 7] [--number 50]
"""

from __future__ import annotations

import argparse
import timeit
from typing import Callable

import numpy as np
import onnxruntime
from onnx import TensorProto, helper

from hailo_ort import _native, transforms
from hailo_ort.quant import quant_from_range

SHAPE = [1, 3, 640, 640]


def _session() -> onnxruntime.InferenceSession:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "cpu_segment",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=50)
    args = parser.parse_args()

    session = _session()
    x = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
    reused = _native.aligned_empty(SHAPE, np.dtype(np.float32))

    def run() -> np.ndarray:
        return session.run(["y"], {"x": x})[0]

    def bind(out: np.ndarray) -> np.ndarray:
        binding = session.io_binding()
        binding.bind_cpu_input("x", x)
        binding.bind_output("y", "cpu", 0, np.float32, out.shape, out.ctypes.data)
        session.run_with_iobinding(binding)
        if binding.get_outputs()[0].data_ptr() != out.ctypes.data:
            raise AssertionError("onnxruntime did not write into the bound buffer")
        return out

    def bind_fresh() -> np.ndarray:
        return bind(_native.aligned_empty(SHAPE, np.dtype(np.float32)))

    def bind_reused() -> np.ndarray:
        return bind(reused)

    expected = run()
    assert np.array_equal(bind_fresh(), expected) and np.array_equal(bind_reused(), expected)
    print(
        f"run output: base {type(expected.base).__name__}, page offset {expected.ctypes.data % 4096}"
    )

    q = quant_from_range(-3.0, 5.0, "uint8")
    dev = _native.aligned_empty([1, 640, 640, 3], np.dtype(np.uint8))

    def to_device() -> object:
        return transforms.to_device(expected, q, "uint8", "NCHW", "NHWC", out=dev, threads=1)

    cases: list[tuple[str, Callable[[], object]]] = [
        ("run", run),
        ("bind fresh", bind_fresh),
        ("bind reused", bind_reused),
        ("to_device", to_device),
    ]
    print(f"{'case':<12} {'us':>8}")
    for name, fn in cases:
        best = min(timeit.repeat(fn, number=args.number, repeat=args.repeat)) / args.number
        print(f"{name:<12} {best * 1e6:8.1f}")


if __name__ == "__main__":
    main()
