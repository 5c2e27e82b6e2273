"""Throughput of a HailoOp model on the emulator with a modelled device latency.

Sequential ``run`` pays the full device latency per request; ``run_async`` with several requests
in flight overlaps host work with the device, and ``batch_size`` lets queued frames share one
device batch (as HailoRT does). Prints a table and writes JSON.

    python benchmarks/emulator_pipelining.py [--latency-ms 5] [--requests 200]

The HailoOp model is the runtime tests' small CNN (tests/runtime_models.py), compiled by the
emulate backend and embedded by ``hailo_ort.hailoop.embed``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

import hailo_ort

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def build_model():
    import runtime_models

    model, _ = runtime_models.cnn()
    return model


def sequential(sess: hailo_ort.InferenceSession, x: np.ndarray, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        sess.run(None, {"x": x})
    return n / (time.perf_counter() - start)


def pipelined(sess: hailo_ort.InferenceSession, x: np.ndarray, n: int, in_flight: int) -> float:
    slots = threading.Semaphore(in_flight)
    finished = threading.Semaphore(0)
    errors: list[str] = []

    def callback(outputs, user_data, err):
        if err:
            errors.append(err)
        slots.release()
        finished.release()

    start = time.perf_counter()
    for i in range(n):
        slots.acquire()
        sess.run_async(None, {"x": x}, callback, i)
    for _ in range(n):
        finished.acquire()
    if errors:
        raise RuntimeError(errors[0])
    return n / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--json", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()
    data = build_model().SerializeToString()
    x = np.random.default_rng(0).random((1, 3, 8, 8), dtype=np.float32)
    rows = []
    for batch_size in (1, 4):
        sess = hailo_ort.InferenceSession(
            data,
            providers=[
                (
                    "HailoExecutionProvider",
                    {"device": "emulator", "latency_ms": args.latency_ms, "batch_size": batch_size},
                ),
                "CPUExecutionProvider",
            ],
        )
        sess.run(None, {"x": x})
        rows.append(
            {
                "mode": "sequential run",
                "batch_size": batch_size,
                "fps": sequential(sess, x, args.requests),
            }
        )
        for in_flight in (4, 8):
            rows.append(
                {
                    "mode": f"run_async, {in_flight} in flight",
                    "batch_size": batch_size,
                    "fps": pipelined(sess, x, args.requests, in_flight),
                }
            )
        sess.close()
    print(f"modelled device latency {args.latency_ms} ms per batch")
    print(f"{'mode':28} {'batch_size':>10} {'requests/s':>11}")
    for r in rows:
        print(f"{r['mode']:28} {r['batch_size']:>10} {r['fps']:11.1f}")
    from hailo_ort.fileio import write_text_atomic

    result = {"benchmark": "emulator_pipelining", "latency_ms": args.latency_ms, "rows": rows}
    write_text_atomic(args.json, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
