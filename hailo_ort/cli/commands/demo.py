"""``hailo-ort demo``: the whole flow on a built-in example model, in a few seconds.

inspect (what goes where) → compile (the Hailo DFC when present, else emulation) → run on the
best device present (HailoRT, else the emulator) → accuracy against float on held-out inputs
and throughput against plain onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import HailoOrtError

EXAMPLES = ("yolov8n", "resnet18", "mobilenet_v2")
CALIBRATION_IMAGES = 64
HELD_OUT_IMAGES = 8
WARMUP_RUNS = 2


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand."""
    p = subparsers.add_parser(
        "demo",
        help="inspect, compile and run a built-in example; accuracy and speed vs float",
        description=(
            "Run the whole hailo-ort flow on a built-in example model: partition it, compile "
            "the device part (Hailo DFC when installed, else quantization emulation), run it "
            "on the best device present (HailoRT, else the emulator), and compare accuracy and "
            "throughput with the float model on plain onnxruntime."
        ),
    )
    p.add_argument("--example", choices=EXAMPLES, default="yolov8n", help="default: yolov8n")
    p.add_argument("--arch", default="hailo8l", help="target arch (default hailo8l)")
    p.add_argument(
        "--runs", type=int, default=20, metavar="N", help="timed runs per session (default 20)"
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--out", metavar="DIR", help="keep the models here (default: a temp dir)")
    p.set_defaults(func=run)


def _hailort_present() -> bool:
    """Whether HailoRT finds a device here (the device is closed again)."""
    from ...runtime.devices import open_device
    from ...runtime.providers import HailoOptions

    try:
        device = open_device(HailoOptions(device="auto"))
    except HailoOrtError:
        return False
    if device is None:
        return False
    device.close()
    return True


def _time_runs(run_once: Callable[[], Any], runs: int) -> float:
    """Mean seconds per call over ``runs`` calls, after a short warm-up."""
    for _ in range(WARMUP_RUNS):
        run_once()
    start = time.perf_counter()
    for _ in range(runs):
        run_once()
    return (time.perf_counter() - start) / runs


def run(args: argparse.Namespace) -> int:
    """Run ``hailo-ort demo``; returns the exit code."""
    if args.runs < 1:
        raise HailoOrtError(f"--runs must be at least 1, got {args.runs}")
    if args.out:
        out_dir = Path(args.out)
        if out_dir.exists() and not out_dir.is_dir():
            raise HailoOrtError(f"--out {out_dir} exists and is not a folder")
        out_dir.mkdir(parents=True, exist_ok=True)
        return _demo(args, out_dir)
    with tempfile.TemporaryDirectory(prefix="hailo-ort-demo-") as tmp:
        return _demo(args, Path(tmp))


def _demo(args: argparse.Namespace, out_dir: Path) -> int:
    import onnxruntime

    import hailo_ort

    from ...compile.common import accuracy
    from ...fileio import write_bytes_atomic
    from ...zoo import get_example, synthetic_images

    lines: list[str] = []
    say = lines.append if args.json else print
    name = args.example
    float_model = get_example(name)
    float_path = write_bytes_atomic(out_dir / f"{name}.onnx", float_model.SerializeToString())
    image_input = float_model.graph.input[0].name
    shape = [d.dim_value for d in float_model.graph.input[0].type.tensor_type.shape.dim]

    # 1. inspect
    inspected = hailo_ort.inspect(float_model, args.arch)
    total = len(inspected.prepared.model.graph.node)
    on_device = sum(len(p.nodes) for p in inspected.partitions)
    share = 100.0 * inspected.device_flops_share
    cpu_ops = sorted({c.op_type for c in inspected.cpu_nodes})
    say(f"hailo-ort demo: example:{name} [1, {', '.join(map(str, shape[1:]))}] -> {args.arch}")
    say(
        f"placement: {on_device}/{total} nodes on the device in {len(inspected.partitions)} "
        f"partition(s), {share:.1f}% of FLOPs; CPU: {len(inspected.cpu_nodes)} nodes"
        + (f" ({', '.join(cpu_ops[:6])}{', ...' if len(cpu_ops) > 6 else ''})" if cpu_ops else "")
    )

    # 2. compile (demo calibration: synthetic images, said so)
    calibration = synthetic_images(CALIBRATION_IMAGES, shape[1:], seed=1)
    held_out = synthetic_images(HELD_OUT_IMAGES, shape[1:], seed=1000)
    say(
        f"note: this is a demo: calibrated on {CALIBRATION_IMAGES} synthetic images, not real "
        "data; the example's weights are untrained. Use `hailo-ort compile --calib DIR` on "
        "your own model for real numbers."
    )
    hailo_path = out_dir / f"{name}.hailo.onnx"
    # The compile log lines: the summary below says it.
    with warnings.catch_warnings(), _quiet_log():
        warnings.simplefilter("ignore")  # the "few calibration samples" warning: noted above
        t0 = time.perf_counter()
        result = hailo_ort.compile(
            float_path,
            args.arch,
            calibration={image_input: calibration},
            backend="auto",
            output=hailo_path,
            progress=not args.json,  # shown on a terminal only (the DFC takes minutes)
        )
        compile_s = time.perf_counter() - t0
    cache = all(p.cache_hit for p in result.partitions)
    if result.backend == "emulate":
        backend_text = "emulate (no Hailo DFC found; predicts 8-bit quantization, not the compiler)"
    else:
        backend_text = "dfc (the Hailo Dataflow Compiler)"
    say(
        f"compile: {backend_text}, {compile_s:.1f} s{' (cache)' if cache else ''} -> "
        f"{hailo_path if args.out else hailo_path.name + ' (in a temporary folder; --out DIR keeps it)'}"
    )

    # 3. the best device present for what was compiled
    hailort = _hailort_present()
    if result.backend == "dfc":
        device = "hailort" if hailort else "auto"
    else:
        device = "emulator"
    providers = [("HailoExecutionProvider", {"device": device}), "CPUExecutionProvider"]
    # The session's own "running on the CPU" log line: the demo says it itself.
    with warnings.catch_warnings(), _quiet_log():
        warnings.simplefilter("ignore")
        sess = hailo_ort.InferenceSession(str(hailo_path), providers=providers)
    session_providers = sess.get_providers()
    on_hailo = session_providers[0] == "HailoExecutionProvider"
    if on_hailo and device == "emulator":
        where = "the emulator (hailo-ort's model of the device, on this CPU)"
        if hailort:
            where += "; a Hailo device is present but emulated models carry no HEF"
    elif on_hailo:
        where = "a Hailo device (HailoRT)"
    else:
        where = "the CPU (no Hailo device found; the float fallback ran)"
    say(f"device: {where}")
    ref = onnxruntime.InferenceSession(str(float_path), providers=["CPUExecutionProvider"])

    # 4. accuracy on held-out inputs
    output_names = [o.name for o in sess.get_outputs()]
    got: dict[str, list[np.ndarray]] = {n: [] for n in output_names}
    want: dict[str, list[np.ndarray]] = {n: [] for n in output_names}
    for image in held_out:
        feed = {image_input: image[None]}
        for n, g, w in zip(output_names, sess.run(None, feed), ref.run(None, feed)):
            got[n].append(g)
            want[n].append(w)
    metrics = {n: accuracy(np.stack(want[n]), np.stack(got[n])) for n in output_names}
    say(f"accuracy vs float ({HELD_OUT_IMAGES} held-out inputs):")
    for n, m in metrics.items():
        say(
            f"  {n}: cosine {m['cosine']:.4f}, SNR {m['snr_db']:.1f} dB, "
            f"max abs error {m['max_abs_error']:.4g}"
        )

    # 5. throughput
    feed = {image_input: held_out[:1]}
    hailo_s = _time_runs(lambda: sess.run(None, feed), args.runs)
    float_s = _time_runs(lambda: ref.run(None, feed), args.runs)
    say(f"throughput ({args.runs} runs, batch 1):")
    say(f"  hailo-ort ({'emulator' if device == 'emulator' else device}): "
        f"{1000 * hailo_s:.2f} ms/run, {1 / hailo_s:.1f} FPS")  # fmt: skip
    say(f"  onnxruntime float (CPU): {1000 * float_s:.2f} ms/run, {1 / float_s:.1f} FPS")
    if device == "emulator":
        say(
            "  note: the emulator computes the quantized model on this CPU; its speed says "
            "nothing about a Hailo device's"
        )
    if args.out:
        say(f"models: {float_path}, {hailo_path}")
    sess.close()

    if args.json:
        report = {
            "example": name,
            "arch": result.arch,
            "placement": {
                "nodes": total,
                "device_nodes": on_device,
                "partitions": len(inspected.partitions),
                "device_flops_share": inspected.device_flops_share,
                "cpu_nodes": len(inspected.cpu_nodes),
                "cpu_ops": cpu_ops,
            },
            "compile": {
                "backend": result.backend,
                "seconds": compile_s,
                "cache_hit": cache,
                "calibration": f"{CALIBRATION_IMAGES} synthetic images (demo)",
            },
            "device": device if on_hailo else "cpu",
            "providers": session_providers,
            "accuracy": {
                "held_out_inputs": HELD_OUT_IMAGES,
                "outputs": {
                    n: {k: (v if math.isfinite(v) else None) for k, v in m.items()}
                    for n, m in metrics.items()
                },
            },
            "throughput": {
                "runs": args.runs,
                "hailo_ort_ms": 1000 * hailo_s,
                "hailo_ort_fps": 1 / hailo_s,
                "onnxruntime_float_ms": 1000 * float_s,
                "onnxruntime_float_fps": 1 / float_s,
            },
            "models": {"float": str(float_path), "hailo": str(hailo_path)} if args.out else None,
            "notes": lines,
        }
        print(json.dumps(report, indent=2, default=_json_number, allow_nan=False))
    return 0


def _json_number(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class _quiet_log:
    """Show only errors of the ``hailo_ort`` logger inside the block: the demo reports itself."""

    def __enter__(self) -> None:
        self._logger = logging.getLogger("hailo_ort")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)
