"""Benchmark stage 1 (``hailo_ort.graph.prepare``) on built-in and synthetic graphs.

Run: ``python benchmarks/bench_prepare.py [--sizes 1000,10000,50000] [--repeat 3]``.
Target: prepare of a 10k-node graph well under 1 s (it shares that budget with partitioning).
Exits 1 when the 10k-node median exceeds ``--target-10k`` seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from hailo_ort import zoo
from hailo_ort.graph import prepare


def _median_seconds(build, repeat: int) -> tuple[float, int]:
    times = []
    nodes = 0
    for _ in range(repeat):
        model = build()
        start = time.perf_counter()
        prepared = prepare(model)
        times.append(time.perf_counter() - start)
        nodes = len(prepared.model.graph.node)
    return statistics.median(times), nodes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--target-10k", type=float, default=0.5)
    args = parser.parse_args(argv)

    print(f"{'model':<20} {'nodes':>7} {'prepare (s)':>12}")
    for name, build in zoo.EXAMPLES.items():
        seconds, nodes = _median_seconds(build, args.repeat)
        print(f"{name:<20} {nodes:>7} {seconds:>12.3f}")
    status = 0
    for size in (int(s) for s in args.sizes.split(",") if s):
        seconds, nodes = _median_seconds(lambda size=size: zoo.synthetic(size), args.repeat)
        print(f"{'synthetic:' + str(size):<20} {nodes:>7} {seconds:>12.3f}")
        if size == 10000 and seconds > args.target_10k:
            print(f"  over target: {seconds:.3f} s > {args.target_10k} s", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
