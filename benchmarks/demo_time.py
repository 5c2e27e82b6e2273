"""Wall time of `hailo-ort demo` per example, cold (empty compile cache) and warm (cache hit).

Target: a few seconds each, cold, on a laptop-class CPU without the DFC (emulation). Runs the
command in a fresh process, as a user would. Prints a table and writes JSON.

    python benchmarks/demo_time.py [--runs 20] [--json benchmarks/demo_time.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hailo_ort.fileio import write_text_atomic

TARGET_S = 5.0
EXAMPLES = ("yolov8n", "resnet18", "mobilenet_v2")


def timed_demo(example: str, runs: int, cache: str) -> float:
    env = {**os.environ, "HAILO_ORT_CACHE_DIR": cache}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "hailo_ort", "demo", "--example", example, "--runs", str(runs)],
        check=True,
        capture_output=True,
        env=env,
    )
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="the demo's --runs (default 20)")
    parser.add_argument("--json", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args(argv)
    rows = []
    print(f"{'example':<14}{'cold s':>8}{'warm s':>8}  target < {TARGET_S:.0f} s cold")
    for example in EXAMPLES:
        with tempfile.TemporaryDirectory() as cache:
            cold = timed_demo(example, args.runs, cache)
            warm = timed_demo(example, args.runs, cache)
        rows.append({"example": example, "cold_s": round(cold, 2), "warm_s": round(warm, 2)})
        flag = "" if cold < TARGET_S else "  (over target)"
        print(f"{example:<14}{cold:>8.2f}{warm:>8.2f}{flag}")
    write_text_atomic(
        args.json, json.dumps({"runs": args.runs, "target_s": TARGET_S, "rows": rows})
    )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
