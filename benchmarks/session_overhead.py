"""Per-run overhead of hailo_ort.InferenceSession over onnxruntime.InferenceSession.

A model without HailoOp nodes is a pass-through to one onnxruntime session; the target is at
most 20 µs extra per run on a tiny model. A last row times the plan path: the CNN compiled with
quantization emulation, run by hailo_ort on the emulator, against onnxruntime running the same
compiled model's float fallback. That row is not pure overhead: the emulator also quantizes and
dequantizes at the partition boundary and runs the partition in its QDQ form.
Prints a table; ``--json-out FILE`` also writes the results as JSON.

    python benchmarks/session_overhead.py [--runs 5000] [--json-out session_overhead.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

import hailo_ort

TARGET_US = 20.0


def tiny_model() -> onnx.ModelProto:
    """y = relu(x + 1), x [1, 16]."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["t"]), helper.make_node("Relu", ["t"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
        initializer=[numpy_helper.from_array(np.array(1.0, np.float32), "one")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def cnn_model() -> onnx.ModelProto:
    """A mid-size CNN: 4 conv(3x3)+relu stages with stride-2 downsampling on 1x3x96x96."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    cur, cin = "x", 3
    for i, cout in enumerate((16, 32, 64, 128)):
        w = (rng.standard_normal((cout, cin, 3, 3)) * (2.0 / (cin * 9)) ** 0.5).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(
            helper.make_node("Conv", [cur, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1], strides=[2, 2])
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        cur, cin = f"r{i}", cout
    nodes.append(helper.make_node("GlobalAveragePool", [cur], ["g"]))
    nodes.append(helper.make_node("Flatten", ["g"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 96, 96])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 128])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def us_per_run(session: object, feed: dict, runs: int, repeats: int = 5) -> float:
    """Median over ``repeats`` of the mean µs per ``session.run``."""
    for _ in range(min(200, runs)):
        session.run(None, feed)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(runs):
            session.run(None, feed)
        samples.append((time.perf_counter() - start) / runs * 1e6)
    return statistics.median(samples)


def _row(name: str, path: str, t_ort: float, t_ours: float, runs: int) -> dict:
    return {
        "model": name,
        "path": path,
        "onnxruntime_us": round(t_ort, 2),
        "hailo_ort_us": round(t_ours, 2),
        "overhead_us": round(t_ours - t_ort, 2),
        "runs_per_sample": runs,
    }


def plan_row(opts: onnxruntime.SessionOptions, runs: int) -> dict:
    """The CNN compiled with emulation: hailo_ort's plan on the emulator vs onnxruntime on the
    compiled model's float fallback (the same graph without quantization)."""
    from hailo_ort.hailoop import fallback_model

    compiled = hailo_ort.compile(
        cnn_model(), "hailo8", calibration="random", backend="emulate", cache=False, progress=False
    )
    data = compiled.model.SerializeToString()
    feed = {"x": np.random.default_rng(1).random((1, 3, 96, 96), dtype=np.float32)}
    ort = onnxruntime.InferenceSession(
        fallback_model(compiled.model).SerializeToString(),
        sess_options=opts,
        providers=["CPUExecutionProvider"],
    )
    ours = hailo_ort.InferenceSession(
        data,
        sess_options=opts,
        providers=[("HailoExecutionProvider", {"device": "emulator"}), "CPUExecutionProvider"],
    )
    if not ours.device_nodes:
        raise SystemExit("the compiled CNN did not run as a plan on the emulator")
    assert ort.run(None, feed)[0].shape == ours.run(None, feed)[0].shape
    t_ort = min(us_per_run(ort, feed, runs), us_per_run(ort, feed, runs))
    t_ours = min(us_per_run(ours, feed, runs), us_per_run(ours, feed, runs))
    return _row("cnn, emulated vs float fallback", "plan/emulator", t_ort, t_ours, runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000, help="runs per sample (tiny model)")
    parser.add_argument("--json-out", type=Path, help="write the results as JSON to this file")
    args = parser.parse_args()

    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    rows = []
    for name, model, shape, runs in (
        ("tiny (Add+Relu, 1x16)", tiny_model(), (1, 16), args.runs),
        ("cnn (4 conv, 1x3x96x96)", cnn_model(), (1, 3, 96, 96), max(50, args.runs // 25)),
    ):
        data = model.SerializeToString()
        feed = {"x": np.random.default_rng(1).random(shape, dtype=np.float32)}
        ort = onnxruntime.InferenceSession(
            data, sess_options=opts, providers=["CPUExecutionProvider"]
        )
        ours = hailo_ort.InferenceSession(data, sess_options=opts)
        np.testing.assert_array_equal(ort.run(None, feed)[0], ours.run(None, feed)[0])
        # interleave to share the machine's noise between the two
        t_ort = min(us_per_run(ort, feed, runs), us_per_run(ort, feed, runs))
        t_ours = min(us_per_run(ours, feed, runs), us_per_run(ours, feed, runs))
        rows.append(_row(name, "pass-through", t_ort, t_ours, runs))
    rows.append(plan_row(opts, max(50, args.runs // 25)))

    print(f"{'model':34} {'path':13} {'onnxruntime µs':>15} {'hailo_ort µs':>13} {'extra µs':>9}")
    for r in rows:
        print(
            f"{r['model']:34} {r['path']:13} {r['onnxruntime_us']:15.2f} {r['hailo_ort_us']:13.2f} "
            f"{r['overhead_us']:9.2f}"
        )
    tiny_overhead = rows[0]["overhead_us"]
    verdict = "within" if tiny_overhead <= TARGET_US else "OVER"
    print(f"tiny-model overhead {tiny_overhead:.2f} µs: {verdict} the {TARGET_US:.0f} µs target")
    result = {
        "benchmark": "session_overhead",
        "target_us": TARGET_US,
        "onnxruntime": onnxruntime.__version__,
        "hailo_ort": hailo_ort.__version__,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "rows": rows,
    }
    if args.json_out:
        from hailo_ort.fileio import write_text_atomic

        write_text_atomic(args.json_out, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
