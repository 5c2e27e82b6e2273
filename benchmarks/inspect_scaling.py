"""Scaling of prepare + partition with graph size (target: near-linear, < 1 s at 10k nodes).

Usage: python benchmarks/inspect_scaling.py [--sizes 1000 2000 ...] [--arch hailo8l] [--json-out F]

Graphs come from ``hailo_ort.zoo.synthetic(n)`` (residual conv blocks with a CPU-only op every
50 blocks, so the partitioner has real cutting to do), prepared by ``hailo_ort.graph.prepare``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

DEFAULT_SIZES = [1000, 2000, 5000, 10000, 20000, 50000]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES)
    parser.add_argument("--arch", default="hailo8l")
    parser.add_argument("--repeat", type=int, default=1, help="best of N timings")
    parser.add_argument("--json-out", help="write the results as JSON to this file")
    args = parser.parse_args(argv)

    from hailo_ort.graph import prepare
    from hailo_ort.partition.partitioner import partition_model
    from hailo_ort.partition.support import load_support_table
    from hailo_ort.zoo import synthetic as make

    source, prepare_source = "hailo_ort.zoo.synthetic", "hailo_ort.graph.prepare"
    table = load_support_table(args.arch)
    rows = []
    print(f"graphs: {source}; prepare: {prepare_source}; arch {args.arch}")
    print(
        f"{'nodes':>7}  {'prepare s':>9}  {'partition s':>11}  {'total s':>8}  {'µs/node':>8}  partitions  cpu"
    )
    for n in args.sizes:
        model = make(n)
        best = None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            prepared = prepare(model)
            t1 = time.perf_counter()
            plan = partition_model(prepared, table)
            t2 = time.perf_counter()
            if best is None or t2 - t0 < best[0] + best[1]:
                best = (t1 - t0, t2 - t1, plan)
        assert best is not None
        prep_s, part_s, plan = best
        count = len(prepared.model.graph.node)
        row = {
            "nodes": count,
            "prepare_s": round(prep_s, 4),
            "partition_s": round(part_s, 4),
            "total_s": round(prep_s + part_s, 4),
            "us_per_node": round(1e6 * (prep_s + part_s) / max(count, 1), 2),
            "partitions": len(plan.partitions),
            "cpu_nodes": len(plan.cpu_nodes),
        }
        rows.append(row)
        print(
            f"{count:>7}  {prep_s:>9.3f}  {part_s:>11.3f}  {prep_s + part_s:>8.3f}  "
            f"{row['us_per_node']:>8.1f}  {len(plan.partitions):>10}  {len(plan.cpu_nodes)}"
        )
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        growth = (b["total_s"] / max(a["total_s"], 1e-9)) / (b["nodes"] / a["nodes"])
        print(
            f"time growth / size growth from {a['nodes']} to {b['nodes']} nodes: {growth:.2f} (1.0 = linear)"
        )
    at_10k = [r for r in rows if 9000 <= r["nodes"] <= 11000]
    if at_10k:
        verdict = "meets" if at_10k[0]["total_s"] < 1.0 else "MISSES"
        print(f"10k nodes: {at_10k[0]['total_s']:.3f} s ({verdict} the < 1 s target)")
    if args.json_out:
        from hailo_ort.fileio import write_text_atomic

        write_text_atomic(
            args.json_out,
            json.dumps(
                {"arch": args.arch, "graphs": source, "prepare": prepare_source, "rows": rows},
                indent=2,
            )
            + "\n",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
