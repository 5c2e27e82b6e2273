"""Benchmark the host transforms: native fused kernels vs the numpy reference vs a memcpy.

For each real tensor shape (a 640x640 detector input, YOLOv8 head outputs, a classifier output)
it times, in one run:

* ``native x1``  a prepared transform (hailo_ort.transforms.prepare_to_device /
  prepare_from_device, what the runtime uses per stream) with ``threads=1`` into a
  preallocated ``out`` that starts on a cache line, as the runtime's are (pooled page-aligned
  device buffers; float outputs from ``transforms.empty_aligned``); device-side inputs of
  ``from_device`` start on a page, like the pooled buffers the device writes;
* ``native xN``  the same with ``threads=N`` (default: all hardware threads);
* ``func x1``    the plain functions to_device/from_device with ``threads=1`` (same kernels,
  plus the per-call argument handling the prepared object does once);
* ``numpy``      the reference (to_device_reference / from_device_reference);
* ``memcpy``     ``np.copyto`` of the float32 tensor into a preallocated array, also starting
  on a cache line.

Bandwidth counts the bytes touched (read + written): float32 + integer bytes for a transform,
twice the float32 bytes for the memcpy. ``vs numpy`` is the speed-up in time; ``vs memcpy`` is the
fraction of the memcpy's bandwidth. Run: ``python benchmarks/transforms.py [--json-out PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from hailo_ort import _native, transforms
from hailo_ort.quant import QuantInfo, quant_from_range


@dataclass
class Case:
    name: str
    direction: str  # "to_device" | "from_device"
    host_shape: tuple[int, ...]
    host_order: str
    device_order: str
    dtype: str = "uint8"
    per_feature: bool = False


CASES = [
    Case("input 1x3x640x640", "to_device", (1, 3, 640, 640), "NCHW", "NHWC"),
    Case("input 1x3x640x640 u16", "to_device", (1, 3, 640, 640), "NCHW", "NHWC", "uint16"),
    Case("input 1x640x640x3 (NHWC, quantize only)", "to_device", (1, 640, 640, 3), "NHWC", "NHWC"),
    Case("input 1x3x640x640 -> NHCW", "to_device", (1, 3, 640, 640), "NCHW", "NHCW"),
    Case("yolov8 box 1x64x80x80", "from_device", (1, 64, 80, 80), "NCHW", "NHWC"),
    Case("yolov8 cls 1x80x80x80", "from_device", (1, 80, 80, 80), "NCHW", "NHWC"),
    Case("yolov8 box 1x64x40x40", "from_device", (1, 64, 40, 40), "NCHW", "NHWC"),
    Case("yolov8 cls 1x80x40x40", "from_device", (1, 80, 40, 40), "NCHW", "NHWC"),
    Case("yolov8 box 1x64x20x20", "from_device", (1, 64, 20, 20), "NCHW", "NHWC"),
    Case("yolov8 cls 1x80x20x20", "from_device", (1, 80, 20, 20), "NCHW", "NHWC"),
    Case(
        "yolov8 cls 1x80x80x80 per-feature",
        "from_device",
        (1, 80, 80, 80),
        "NCHW",
        "NHWC",
        per_feature=True,
    ),
    Case("yolov8 cls 1x80x80x80 u16", "from_device", (1, 80, 80, 80), "NCHW", "NHWC", "uint16"),
    Case("yolov8 cls 1x80x80x80 NHCW -> NCHW", "from_device", (1, 80, 80, 80), "NCHW", "NHCW"),
    Case("yolov8 cls 1x80x80x80 NHCW -> NHWC", "from_device", (1, 80, 80, 80), "NHWC", "NHCW"),
    Case("input 1x640x640x3 -> NHCW", "to_device", (1, 640, 640, 3), "NHWC", "NHCW"),
    Case("classifier 1x1000", "from_device", (1, 1000), "NC", "NC"),
]


def _time_all(
    fns: dict[str, Callable[[], object]], min_time: float, repeat: int
) -> dict[str, float]:
    """Best-of-`repeat` seconds per call of each function, each sample long enough to time
    reliably. The samples are interleaved (one of each function per round), so a burst of
    noise on a shared machine does not fall on one column only."""
    loops = {}
    for name, fn in fns.items():
        fn()
        t0 = time.perf_counter()
        fn()
        loops[name] = max(1, int(min_time / max(time.perf_counter() - t0, 1e-7)))
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(loops[name]):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / loops[name])
    return best


def _quant(case: Case, n_features: int) -> QuantInfo:
    q = quant_from_range(-3.0, 5.0, case.dtype)
    if case.per_feature:
        rng = np.random.default_rng(1)
        q.scales = list(rng.uniform(0.5, 1.5, n_features) * q.scale)
        q.zps = [q.zp] * n_features
    return q


def _page_aligned_copy(a: np.ndarray) -> np.ndarray:
    out = _native.aligned_empty(list(a.shape), a.dtype)
    out[...] = a
    return out


def run_case(case: Case, threads: int, min_time: float, repeat: int) -> dict:
    rng = np.random.default_rng(0)
    x = rng.normal(0.5, 2.0, size=case.host_shape).astype(np.float32)
    perm = transforms._perm(case.host_order, case.device_order, x.ndim)
    dev_shape = tuple(x.shape[i] for i in perm)
    n_feat = dev_shape[transforms._feature_axis(case.device_order, x.ndim)]
    q = _quant(case, n_feat)
    dev = transforms.to_device_reference(x, q, case.dtype, case.host_order, case.device_order)
    # device buffers start on a page in the runtime (BufferPool): so do they here
    dev = _page_aligned_copy(dev)
    ho, do = case.host_order, case.device_order
    if case.direction == "to_device":
        out = transforms.empty_aligned(dev_shape, case.dtype)

        def ours(t: int) -> Callable[[], object]:
            prepared = transforms.prepare_to_device(q, case.dtype, ho, do, x.shape, threads=t)
            return lambda: prepared(x, out)

        def func(t: int) -> Callable[[], object]:
            return lambda: transforms.to_device(x, q, case.dtype, ho, do, out=out, threads=t)

        def ref() -> object:
            return transforms.to_device_reference(x, q, case.dtype, ho, do)

        assert np.array_equal(ours(1)(), ref())
        assert np.array_equal(func(1)(), ref())
    else:
        out = transforms.empty_aligned(x.shape, np.float32)

        def ours(t: int) -> Callable[[], object]:
            prepared = transforms.prepare_from_device(q, case.dtype, ho, do, dev.shape, threads=t)
            return lambda: prepared(dev, out)

        def func(t: int) -> Callable[[], object]:
            return lambda: transforms.from_device(dev, q, ho, do, out=out, threads=t)

        def ref() -> object:
            return transforms.from_device_reference(dev, q, ho, do)

        assert np.array_equal(ours(1)().view(np.uint32), ref().view(np.uint32))
        assert np.array_equal(func(1)().view(np.uint32), ref().view(np.uint32))

    copy_dst = transforms.empty_aligned(x.shape, np.float32)
    times = _time_all(
        {
            "one": ours(1),
            "multi": ours(threads),
            "func": func(1),
            "ref": ref,
            "copy": lambda: np.copyto(copy_dst, x),
        },
        min_time,
        repeat,
    )
    t_one, t_multi, t_func = times["one"], times["multi"], times["func"]
    t_ref, t_copy = times["ref"], times["copy"]
    nbytes = x.nbytes + dev.nbytes
    copy_bytes = 2 * x.nbytes

    def gbps(b: int, t: float) -> float:
        return b / t / 1e9

    used = _native.transform_threads(threads, nbytes, quantize=case.direction == "to_device")
    return {
        **{k: v for k, v in asdict(case).items() if k != "host_shape"},
        "host_shape": list(case.host_shape),
        "bytes": nbytes,
        "threads_used": used,
        "native_1t_s": t_one,
        "native_mt_s": t_multi,
        "function_1t_s": t_func,
        "numpy_s": t_ref,
        "memcpy_s": t_copy,
        "native_1t_gbps": gbps(nbytes, t_one),
        "native_mt_gbps": gbps(nbytes, t_multi),
        "numpy_gbps": gbps(nbytes, t_ref),
        "memcpy_gbps": gbps(copy_bytes, t_copy),
        "speedup_vs_numpy_1t": t_ref / t_one,
        "speedup_vs_numpy_mt": t_ref / t_multi,
        "fraction_of_memcpy_1t": gbps(nbytes, t_one) / gbps(copy_bytes, t_copy),
        "fraction_of_memcpy_mt": gbps(nbytes, t_multi) / gbps(copy_bytes, t_copy),
    }


def print_table(rows: list[dict], threads: int) -> None:
    head = (
        f"{'case':<38} {'dir':<4} {'MB':>6} {'x1 GB/s':>8} {f'x{threads} GB/s':>9} "
        f"{'numpy':>7} {'memcpy':>7} {'x1/np':>6} {f'x{threads}/np':>6} {'x1/cpy':>6} "
        f"{'us x1':>8} {'us func':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['name']:<38} {'to' if r['direction'] == 'to_device' else 'from':<4} "
            f"{r['bytes'] / 1e6:>6.2f} {r['native_1t_gbps']:>8.1f} {r['native_mt_gbps']:>9.1f} "
            f"{r['numpy_gbps']:>7.2f} {r['memcpy_gbps']:>7.1f} "
            f"{r['speedup_vs_numpy_1t']:>5.1f}x {r['speedup_vs_numpy_mt']:>5.1f}x "
            f"{r['fraction_of_memcpy_1t']:>6.2f} {r['native_1t_s'] * 1e6:>8.2f} "
            f"{r['function_1t_s'] * 1e6:>8.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-out", help="write the results as JSON to this path")
    parser.add_argument(
        "--threads", type=int, default=0, help="threads for the multi-threaded column (0: all)"
    )
    parser.add_argument("--min-time", type=float, default=0.02, help="seconds per sample")
    parser.add_argument("--repeat", type=int, default=15, help="samples per measurement (best)")
    parser.add_argument("--filter", default="", help="only cases whose name contains this")
    parser.add_argument(
        "--kernels",
        default="auto",
        help=f"kernel set to use: auto or one of {', '.join(_native.kernel_sets())}",
    )
    args = parser.parse_args(argv)
    _native.use_kernel_set(args.kernels)

    threads = args.threads or max(1, _native.hardware_threads())
    rows = [
        run_case(c, threads, args.min_time, args.repeat)
        for c in CASES
        if args.filter.lower() in c.name.lower()
    ]
    print(
        f"hailo-ort transforms benchmark: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"numpy {np.__version__}, python {platform.python_version()}, "
        f"page size {_native.page_size()}, kernels {_native.kernel_set()}"
    )
    print_table(rows, threads)
    if args.json_out:
        payload = {
            "machine": platform.machine(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "numpy": np.__version__,
            "python": sys.version.split()[0],
            "threads": threads,
            "kernels": _native.kernel_set(),
            "min_time": args.min_time,
            "repeat": args.repeat,
            "results": rows,
        }
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
