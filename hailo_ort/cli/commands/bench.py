"""``hailo-ort bench``: latency percentiles, throughput and time per stage of a model."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from ...errors import HailoOrtError, ModelError

_DEVICES = ("auto", "hailort", "emulator", "cpu")
_EXAMPLE = "example:"


def register(subparsers: Any) -> None:
    """Add the ``bench`` subcommand."""
    p = subparsers.add_parser(
        "bench",
        help="measure latency (p50/p90/p99), throughput and the time of each stage",
        description=(
            "Run MODEL on random inputs of its input shapes and types: first one request at a "
            "time (latency percentiles, time per stage: CPU segments, host transforms, device), "
            "then pipelined (throughput). MODEL is an .onnx (a plain model runs on the CPU), a "
            "model.hailo.onnx, or example:NAME (compiled with emulation into a temporary "
            "folder first)."
        ),
    )
    p.add_argument("model", metavar="MODEL", help="an .onnx / .hailo.onnx file, or example:NAME")
    p.add_argument(
        "--providers",
        metavar="P1,P2",
        help="execution providers in order (default: HailoExecutionProvider,CPUExecutionProvider)",
    )
    p.add_argument(
        "--device",
        choices=_DEVICES,
        default="auto",
        help="auto: a Hailo device when present (else the emulator for emulated models, else "
        "the CPU); cpu: no Hailo provider",
    )
    p.add_argument("--batch", type=int, default=1, metavar="N", help="device batch size")
    p.add_argument(
        "--duration", type=float, default=10.0, metavar="S", help="seconds of measurement"
    )
    p.add_argument("--warmup", type=float, default=2.0, metavar="S", help="seconds of warm-up")
    p.add_argument(
        "--input-shape",
        action="append",
        metavar="NAME=D0,D1,...",
        help="shape of an input with dynamic dims (repeatable)",
    )
    p.add_argument(
        "--max-in-flight",
        type=int,
        metavar="N",
        help="requests in the pipeline at once in the throughput phase (default: session's)",
    )
    p.add_argument(
        "--emulator-latency-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="modelled fixed device latency per batch on the emulator",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.set_defaults(func=run)


# ---- inputs -------------------------------------------------------------------------------

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(uint16)": np.uint16,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


def random_feed(
    inputs: Sequence[Any], shapes: dict[str, list[int]], seed: int = 0
) -> dict[str, np.ndarray]:
    """Random arrays for the session inputs (``NodeArg`` s), dynamic dims from ``shapes``.

    A dynamic leading (batch) dimension defaults to 1; other dynamic dimensions must be given.
    """
    rng = np.random.default_rng(seed)
    known = {i.name for i in inputs}
    unknown = sorted(set(shapes) - known)
    if unknown:
        raise ModelError(
            f"--input-shape names unknown input(s) {', '.join(unknown)}; the model's inputs: "
            f"{', '.join(sorted(known))}"
        )
    feed: dict[str, np.ndarray] = {}
    for arg in inputs:
        dtype = _ORT_TYPES.get(arg.type)
        if dtype is None:
            raise ModelError(f"input {arg.name} has type {arg.type}: bench cannot make data for it")
        dims = list(arg.shape)
        if arg.name in shapes:
            given = shapes[arg.name]
            if len(given) != len(dims) or any(
                isinstance(d, int) and d != g for d, g in zip(dims, given)
            ):
                raise ModelError(
                    f"--input-shape {arg.name}={','.join(map(str, given))} does not fit the "
                    f"model's shape {dims}"
                )
            dims = list(given)
        for k, d in enumerate(dims):
            if not isinstance(d, int) or d <= 0:
                if k == 0:
                    dims[k] = 1
                else:
                    raise ModelError(
                        f"input {arg.name} has a dynamic dimension {k} ({d!r}): give its shape "
                        f"with --input-shape {arg.name}=D0,D1,..."
                    )
        if np.issubdtype(dtype, np.floating):
            value = rng.standard_normal(dims).astype(dtype)
        elif dtype is np.bool_:
            value = rng.integers(0, 2, dims).astype(np.bool_)
        elif dtype in (np.uint8, np.int8):
            info = np.iinfo(dtype)
            value = rng.integers(info.min, int(info.max) + 1, dims).astype(dtype)
        else:
            value = rng.integers(0, 10, dims).astype(dtype)
        feed[arg.name] = value
    return feed


# ---- progress -----------------------------------------------------------------------------


class _Progress:
    """One status line on stderr, refreshed at most 5 times a second (TTY only)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.enabled = bool(getattr(stream, "isatty", lambda: False)())
        self._last = 0.0
        self._dirty = False

    def show(self, phase: str, done: int, elapsed: float, total: float) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.2:
            return
        self._last = now
        self.stream.write(f"\r\x1b[2K{phase}: {done} requests, {elapsed:.1f}/{total:.1f} s")
        self.stream.flush()
        self._dirty = True

    def clear(self) -> None:
        if self.enabled and self._dirty:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._dirty = False


# ---- the session ----------------------------------------------------------------------------


def _open(args: argparse.Namespace, model: Any, emulated_example: bool) -> tuple[Any, str]:
    """The session and the name of what runs it: "hailort", "emulator" or "cpu"."""
    import hailo_ort

    providers = (
        [p.strip() for p in args.providers.split(",") if p.strip()]
        if args.providers
        else ["HailoExecutionProvider", "CPUExecutionProvider"]
    )
    if args.device == "cpu":
        providers = [p for p in providers if p != "HailoExecutionProvider"] or [
            "CPUExecutionProvider"
        ]
    device = args.device
    if emulated_example and device == "auto":
        device = "emulator"
    if emulated_example and device == "hailort":
        raise HailoOrtError(
            "an example compiled here with emulation has no HEF for a Hailo device: use "
            "--device emulator or cpu, or bench a model compiled with the DFC"
        )

    def session(dev: str) -> Any:
        # A device asked for by name must run the model: no silent fallback to the CPU.
        fallback = "cpu" if dev == "auto" else "error"
        options: dict[str, Any] = {"device": dev, "batch_size": args.batch, "fallback": fallback}
        if args.emulator_latency_ms:
            options["latency_ms"] = args.emulator_latency_ms
        specs: list[Any] = [
            ("HailoExecutionProvider", options) if p == "HailoExecutionProvider" else p
            for p in providers
        ]
        return hailo_ort.InferenceSession(model, providers=specs)

    sess = session(device)
    if sess.device_nodes:
        return sess, "emulator" if device == "emulator" else "hailort"
    if device == "auto" and "HailoExecutionProvider" in providers and _has_hailo_ops(model):
        # No Hailo device: emulated partitions can still run on the emulator.
        try:
            emulated = session("emulator")
        except HailoOrtError:
            emulated = None
        if emulated is not None and emulated.device_nodes:
            sess.close()
            print(
                "hailo-ort bench: no Hailo device found: running the device parts on the emulator",
                file=sys.stderr,
            )
            return emulated, "emulator"
        if emulated is not None:
            emulated.close()
    return sess, "cpu"


def _has_hailo_ops(model: Any) -> bool:
    import onnx

    from ...runtime.plan import has_hailo_ops

    if isinstance(model, onnx.ModelProto):
        return has_hailo_ops(model)
    try:
        return has_hailo_ops(onnx.load(str(model), load_external_data=False))
    except Exception:
        return False


def _resolve_model(spec: str, workdir: Path, quiet: bool) -> tuple[Any, bool]:
    """(model path or ModelProto, whether it is an example compiled here with emulation)."""
    if not spec.startswith(_EXAMPLE):
        path = Path(spec)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        return str(path), False
    import warnings

    import hailo_ort
    from hailo_ort.zoo import get_example

    name = spec[len(_EXAMPLE) :]
    model = get_example(name)
    out = workdir / f"{name.replace(':', '_')}.hailo.onnx"
    print(
        f"hailo-ort bench: compiling {spec} with emulation (random calibration, hailo8) into {out}",
        file=sys.stderr,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hailo_ort.compile(
            model,
            "hailo8",
            calibration="random",
            backend="emulate",
            output=out,
            progress=not quiet,
        )
    return str(out), True


# ---- measuring ----------------------------------------------------------------------------


def _percentiles(latencies: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(latencies, dtype=np.float64) * 1000.0
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {
        "count": int(ms.size),
        "mean": float(ms.mean()),
        "min": float(ms.min()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(ms.max()),
    }


def measure(
    sess: Any,
    feed: dict[str, np.ndarray],
    duration: float,
    warmup: float,
    max_in_flight: int | None,
    progress: _Progress,
) -> dict[str, Any]:
    """Warm up, then time ``run`` one request at a time (with stage timing) for half of
    ``duration`` and ``stream`` (pipelined) for the other half."""
    start = time.perf_counter()
    sess.run(None, feed)
    while time.perf_counter() - start < warmup:
        sess.run(None, feed)
        progress.show("warm-up", 0, time.perf_counter() - start, warmup)
    half = max(duration / 2.0, 1e-3)

    sess.enable_stage_timing(True)
    latencies: list[float] = []
    begin = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        sess.run(None, feed)
        t1 = time.perf_counter()
        latencies.append(t1 - t0)
        if t1 - begin >= half:
            break
        progress.show("latency", len(latencies), t1 - begin, half)
    sequential_s = time.perf_counter() - begin
    stages = {name: s.as_dict() for name, s in sess.stage_times().items()}
    sess.enable_stage_timing(False)

    stop_at = [0.0]

    def feeds() -> Iterator[dict[str, np.ndarray]]:
        while time.perf_counter() < stop_at[0]:
            yield feed

    done = 0
    begin = time.perf_counter()
    stop_at[0] = begin + half
    for _ in sess.stream(feeds(), max_in_flight=max_in_flight):
        done += 1
        progress.show("throughput", done, time.perf_counter() - begin, half)
    pipelined_s = time.perf_counter() - begin
    progress.clear()
    frames = _frames(feed)
    return {
        "frames_per_request": frames,
        "latency_ms": _percentiles(latencies),
        "throughput_fps": {
            "sequential": len(latencies) * frames / sequential_s,
            "pipelined": done * frames / pipelined_s if done else 0.0,
        },
        "sequential": {"requests": len(latencies), "seconds": sequential_s},
        "pipelined": {"requests": done, "seconds": pipelined_s, "max_in_flight": max_in_flight},
        "stages": stages,
    }


def _frames(feed: dict[str, np.ndarray]) -> int:
    first = next(iter(feed.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1


def _report(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]
    fps = result["throughput_fps"]
    lines = [
        f"model      {result['model']}",
        f"runs on    {result['device']} ({', '.join(result['providers'])}); "
        f"device nodes: {', '.join(result['device_nodes']) or 'none'}; batch {result['batch']}",
        f"latency    p50 {lat['p50']:.3f} ms  p90 {lat['p90']:.3f} ms  p99 {lat['p99']:.3f} ms  "
        f"(mean {lat['mean']:.3f} ms over {lat['count']} requests)",
        f"throughput {fps['sequential']:.1f} frames/s one at a time, "
        f"{fps['pipelined']:.1f} frames/s pipelined",
    ]
    if result["stages"]:
        lines.append(f"{'stage':32} {'mean ms':>9} {'p50 ms':>9} {'p99 ms':>9} {'count':>7}")
        for name, s in result["stages"].items():
            lines.append(
                f"{name:32} {s['mean_ms']:9.3f} {s['p50_ms']:9.3f} {s['p99_ms']:9.3f} "
                f"{s['count']:7d}"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``hailo-ort bench``; returns the exit code."""
    from ...graph import parse_input_shapes

    if args.batch < 1:
        raise HailoOrtError(f"--batch must be >= 1, got {args.batch}")
    if args.duration <= 0 or args.warmup < 0:
        raise HailoOrtError("--duration must be > 0 and --warmup >= 0")
    if args.max_in_flight is not None and args.max_in_flight < 1:
        raise HailoOrtError(f"--max-in-flight must be >= 1, got {args.max_in_flight}")
    shapes = parse_input_shapes(args.input_shape) if args.input_shape else {}
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("hailo-ort bench: %(message)s"))
    logger = logging.getLogger("hailo_ort")
    logger.addHandler(handler)
    try:
        with tempfile.TemporaryDirectory(prefix="hailo-ort-bench-") as tmp:
            model, emulated = _resolve_model(args.model, Path(tmp), args.json)
            sess, device = _open(args, model, emulated)
            try:
                feed = random_feed(sess.get_inputs(), shapes)
                result: dict[str, Any] = {
                    "model": args.model,
                    "compiled_with_emulation": emulated,
                    "device": device,
                    "providers": sess.get_providers(),
                    "device_nodes": list(sess.device_nodes),
                    "batch": args.batch,
                    "inputs": {
                        name: {"shape": list(v.shape), "dtype": v.dtype.name}
                        for name, v in feed.items()
                    },
                    "warmup_s": args.warmup,
                    "duration_s": args.duration,
                }
                result.update(
                    measure(
                        sess,
                        feed,
                        args.duration,
                        args.warmup,
                        args.max_in_flight,
                        _Progress(sys.stderr),
                    )
                )
            finally:
                sess.close()
    finally:
        logger.removeHandler(handler)
    print(json.dumps(result, indent=2) if args.json else _report(result))
    return 0
