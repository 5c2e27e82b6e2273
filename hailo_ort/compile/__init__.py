"""Stage 3, compile: device partitions → HEF (Hailo DFC) or emulation model, embedded as HailoOps.

:func:`compile` runs the whole flow: inspect (graph analysis and partition) → calibration →
per partition compile (DFC or emulation, through a content-addressed cache) → embed as
``ai.hailo::HailoOp`` nodes → write ``model.hailo.onnx`` atomically.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import sys
import threading
import time
import types
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import onnx

from ..archs import get_arch
from ..errors import CompileError
from ..fileio import write_bytes_atomic
from ..graph.loader import load_model
from ..graph.prepared import PreparedModel
from ..graph.shapes import model_inputs as real_inputs
from ..hailoop.types import CompiledPartition
from .cache import CompileCache, cache_key
from .calibration import calibration_digest, load_calibration, model_inputs

__all__ = ["AccuracyWarning", "CompileResult", "PartitionResult", "Progress", "compile"]

log = logging.getLogger("hailo_ort.compile")

BACKENDS = ("auto", "dfc", "emulate")
FLAVOURS = ("portable", "fork")


class Progress:
    """A one-line text progress display on stderr (off when not a TTY or disabled).

    While a stage runs, a background ticker refreshes its elapsed time once a second (DFC
    stages take minutes to hours).
    """

    def __init__(self, enabled: bool = True, stream: IO[str] | None = None):
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.enabled = bool(enabled) and bool(isatty())
        self.prefix = ""
        self._label = ""
        self._t0 = time.time()
        self._dirty = False
        self._lock = threading.Lock()
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    def _write(self, text: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.stream.write("\r\x1b[2K" + text[:160])
            self.stream.flush()
            self._dirty = True

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            if self._label:
                self._write(f"{self._label} {time.time() - self._t0:.0f} s")

    def stage(self, name: str) -> None:
        """Show that ``name`` has started (e.g. a DFC stage), with its elapsed time."""
        self._t0 = time.time()
        self._label = f"{self.prefix}{name} ..."
        self._write(self._label)
        if self.enabled and self._ticker is None:
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def bar(self, done: int, total: int, label: str = "") -> None:
        """Show a bar of ``done`` / ``total``."""
        width = 30
        frac = 0.0 if total <= 0 else min(1.0, done / total)
        filled = round(frac * width)
        self._label = ""
        self._write(f"{self.prefix}{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.done()

    def done(self) -> None:
        """End the progress line (and the ticker)."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(2)
            self._ticker = None
        if self.enabled and self._dirty:
            with self._lock:
                self.stream.write("\r\x1b[2K")
                self.stream.flush()
                self._dirty = False


@dataclass
class PartitionResult:
    """What happened to one partition."""

    index: int
    backend: str
    cache_hit: bool
    seconds: float
    payload_bytes: int
    compiled: CompiledPartition


@dataclass
class CompileResult:
    """The outcome of :func:`compile`."""

    model: onnx.ModelProto
    path: Path | None
    arch: str
    backend: str
    partitions: list[PartitionResult] = field(default_factory=list)
    calibration_samples: int = 0
    seconds: float = 0.0
    summary: str = ""

    @property
    def compiled(self) -> list[CompiledPartition]:
        return [p.compiled for p in self.partitions]


# The two neighbouring stages, looked up when used (they are separate modules).
def _inspect(model: Any, arch: str, input_shapes: Any, ops: Any) -> Any:
    module = importlib.import_module("hailo_ort.partition.inspect")
    return module.inspect(model, arch, input_shapes=input_shapes, ops=ops)


def _embed(
    model: onnx.ModelProto, compiled: list[CompiledPartition], flavour: str
) -> onnx.ModelProto:
    module = importlib.import_module("hailo_ort.hailoop")
    return module.embed(model, compiled, flavour=flavour)


def default_output(model_path: str | os.PathLike[str]) -> Path:
    """``x.onnx`` → ``x.hailo.onnx`` in the same folder."""
    path = Path(model_path)
    stem = path.name[: -len(".onnx")] if path.name.endswith(".onnx") else path.name
    return path.with_name(f"{stem}.hailo.onnx")


#: Model metadata key recording the symbolic batch dims of a model compiled per frame.
DYNAMIC_BATCH_KEY = "hailo_ort.dynamic_batch"


def _io_signature(model: onnx.ModelProto) -> onnx.GraphProto:
    """The model's real inputs (not initializers) and outputs as given (symbolic dims kept),
    without its weights: what :func:`_restore_dynamic_batch` compares against."""
    graph = onnx.GraphProto()
    graph.input.extend(real_inputs(model.graph))
    graph.output.extend(model.graph.output)
    return graph


def _leading_dim(vi: onnx.ValueInfoProto) -> tuple[bool, str | int | None]:
    """(has a leading dim, its dim_param or dim_value)."""
    dims = vi.type.tensor_type.shape.dim
    if not vi.type.tensor_type.HasField("shape") or not dims:
        return False, None
    d = dims[0]
    if d.HasField("dim_value"):
        return True, int(d.dim_value)
    return True, d.dim_param or None


def _restore_dynamic_batch(
    original: onnx.GraphProto | None, out_model: onnx.ModelProto
) -> dict[str, dict[str, str]] | None:
    """Give ``out_model`` back the symbolic batch dim of the original model, where valid.

    ``original`` is the original model's :func:`_io_signature`. Valid when every input and output of the original model has a symbolic leading dim and
    the compiled model has 1 there (it was compiled per frame). The graph's inputs / outputs
    then show the symbolic dim again and the metadata (DYNAMIC_BATCH_KEY) tells the session to
    run N frames one at a time. Returns what was recorded ({"inputs": {name: dim}, ...}).
    """
    if original is None:
        return None
    orig_io = [*original.input, *original.output]
    found: dict[str, str] = {}
    for vi in orig_io:
        has, dim = _leading_dim(vi)
        if not has or isinstance(dim, int):
            return None
        found[vi.name] = dim or "N"
    out_init = {i.name for i in out_model.graph.initializer}
    out_io = {
        vi.name: vi
        for vi in [*out_model.graph.input, *out_model.graph.output]
        if vi.name not in out_init
    }
    if set(out_io) != set(found) or any(_leading_dim(vi) != (True, 1) for vi in out_io.values()):
        return None
    for name, vi in out_io.items():
        dim = vi.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_param = found[name]
    inputs = {vi.name for vi in original.input}
    record = {
        "inputs": {n: d for n, d in found.items() if n in inputs},
        "outputs": {n: d for n, d in found.items() if n not in inputs},
    }
    import json

    for prop in list(out_model.metadata_props):
        if prop.key == DYNAMIC_BATCH_KEY:
            out_model.metadata_props.remove(prop)
    out_model.metadata_props.add(key=DYNAMIC_BATCH_KEY, value=json.dumps(record))
    return record


def _model_source(model: Any) -> tuple[bool, str | None]:
    """(is a file path, example name) for a model given to :func:`compile`.

    Accepts what :func:`hailo_ort.graph.load_model` accepts (a path, bytes, a ModelProto,
    ``"example:NAME"``) and a PreparedModel; a missing path is a one-line CompileError.
    """
    from ..graph.loader import EXAMPLE_PREFIX

    if isinstance(model, str) and model.startswith(EXAMPLE_PREFIX):
        name = model[len(EXAMPLE_PREFIX) :].strip()
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return False, safe or "example"
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            what = "is a folder, not an ONNX file" if path.is_dir() else "does not exist"
            raise CompileError(f"model {model} {what}")
        return True, None
    return False, None


def _takes_pixels(norm: Any) -> bool:
    """Whether a leading input normalisation implies 0..255 pixels (e.g. mean 123.675) rather
    than 0..1 images (mean 0.485, std 0.229: the torchvision convention)."""
    values = [abs(float(v)) for v in (*norm.mean, *norm.std)]
    return bool(values) and max(values) > 1.5


def _read_script(model_script: str | os.PathLike[str] | None) -> str | None:
    """The model script text, from a file path or given as text."""
    if model_script is None:
        return None
    text = None if isinstance(model_script, os.PathLike) else str(model_script)
    if text is not None:
        try:
            is_file = Path(text).is_file()
        except (OSError, ValueError):
            is_file = False
        if not is_file and ("\n" in text or "(" in text):
            return text  # script text, not a path
    path = Path(model_script)
    if not path.is_file():
        raise CompileError(f"model script {path} does not exist")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CompileError(f"cannot read model script {path}: {exc}") from exc


def _toolchain_id(backend: str, python: str | None) -> str:
    from .. import __version__

    if backend == "dfc":
        from .dfc import dfc_version

        return f"dfc {dfc_version(python or sys.executable)} ({python}); hailo-ort {__version__}"
    import onnxruntime as ort

    from .emulate import EMULATION_VERSION

    return f"emulate v{EMULATION_VERSION}; hailo-ort {__version__}; onnxruntime {ort.__version__}"


def compile(
    model: str | os.PathLike[str] | bytes | onnx.ModelProto,
    arch: str,
    calibration: Any = None,
    input_shapes: Any = None,
    model_script: str | os.PathLike[str] | None = None,
    optimization_level: int = 2,
    backend: str = "auto",
    flavour: str = "portable",
    output: str | os.PathLike[str] | None = None,
    ops: Any = None,
    cache: bool = True,
    dfc_python: str | os.PathLike[str] | None = None,
    progress: bool = True,
    *,
    calibration_limit: int | None = 1024,
    image_scale: float | None = None,
    timeout: float | None = None,
    cache_root: str | os.PathLike[str] | None = None,
) -> CompileResult:
    """Compile ``model`` for ``arch``: the supported parts to the device, the rest on the CPU.

    ``calibration``: a folder of images, an .npy / .npz, arrays, an iterable of feeds, or
    ``"random"`` (smoke tests only). ``backend``: ``"dfc"`` (the Hailo Dataflow Compiler,
    found through ``dfc_python`` / ``HAILO_DFC_PYTHON`` / this Python), ``"emulate"``
    (predicts 8-bit quantization effects; not the Hailo compiler), or ``"auto"`` (the DFC when
    found, else emulation). The result is written atomically to ``output`` (default:
    ``<model>.hailo.onnx`` next to a model given as a path, ``./NAME.hailo.onnx`` for
    ``"example:NAME"``; nothing is written for bytes or a ModelProto without ``output``). ``calibration_limit`` keeps the first N samples (1,024 by
    default, as the Hailo model zoo uses; None keeps all; 0 or less is an error). ``image_scale`` multiplies the 0..255
    pixels of a calibration image folder (default: 1 when the model's input normalisation implies
    0..255 pixels, else 1/255). Every failure is a HailoOrtError and writes nothing.
    """
    t_start = time.time()
    arch_name = get_arch(arch).name
    if backend not in BACKENDS:
        raise CompileError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if flavour not in FLAVOURS:
        raise CompileError(f"unknown flavour {flavour!r}; choose one of {', '.join(FLAVOURS)}")
    if not 0 <= int(optimization_level) <= 4:
        raise CompileError(f"optimization level {optimization_level} is not in 0..4")
    if image_scale is not None and not float(image_scale) > 0:
        raise CompileError(f"image scale must be positive, got {image_scale}")
    script = _read_script(model_script)
    is_path, example = _model_source(model)
    if output is not None:
        out_path: Path | None = Path(output)
    elif is_path:
        out_path = default_output(model)  # type: ignore[arg-type]
    elif example is not None:
        out_path = Path.cwd() / f"{example}.hailo.onnx"
    else:
        out_path = None
    if out_path is not None and is_path and out_path.resolve() == Path(model).resolve():  # type: ignore[arg-type]
        raise CompileError(f"the output {out_path} would overwrite the input model")
    with Progress(progress) as display:
        # 1. inspect
        display.stage("inspect")
        # Loaded once: inspect prepares a copy, the signature keeps the symbolic batch dims.
        original: onnx.GraphProto | None = None
        loaded: Any = model
        if not isinstance(model, PreparedModel):
            loaded = load_model(model)
            original = _io_signature(loaded)
        inspected = _inspect(loaded, arch_name, input_shapes, ops)
        del loaded
        prepared = inspected.prepared.model
        partitions = list(inspected.partitions)
        if not partitions:
            reasons = {n.reason for n in getattr(inspected, "cpu_nodes", [])}
            why = f" ({'; '.join(sorted(reasons)[:3])})" if reasons else ""
            raise CompileError(
                f"nothing to put on the device: no part of the model is supported on {arch_name}"
                f"{why}; run it on the CPU with onnxruntime"
            )
        normalizations = list(getattr(inspected, "normalization", []) or [])

        # 2. backend
        python: str | None = None
        note = ""
        if backend in ("auto", "dfc"):
            from .dfc import find_dfc_python, require_dfc_python

            python = (
                require_dfc_python(dfc_python) if backend == "dfc" else find_dfc_python(dfc_python)
            )
        chosen = "dfc" if python else "emulate"
        if flavour == "fork" and chosen == "emulate":
            raise CompileError(
                "the fork flavour (Hailo's onnxruntime fork) needs HEFs from the Hailo DFC; "
                + (
                    "no DFC was found (--dfc-python / HAILO_DFC_PYTHON)"
                    if backend == "auto"
                    else "the emulate backend makes none: use --flavour portable"
                )
            )
        if backend == "auto" and chosen == "emulate":
            note = "no Hailo DFC found (see --dfc-python / HAILO_DFC_PYTHON): using emulation"
            log.debug("%s", note)  # the summary carries it (once)

        # 3. calibration
        display.stage("calibration data")
        feeds = load_calibration(
            calibration,
            model_inputs(prepared),
            limit=calibration_limit,
            image_scale=image_scale,
            pixel_inputs={n.input for n in normalizations if _takes_pixels(n)},
            unit_inputs={n.input for n in normalizations if not _takes_pixels(n)},
            on_progress=lambda done, total: display.bar(done, total, "calibration images"),
        )

        # 4. compile each partition, through the cache
        store = CompileCache(cache_root, enabled=cache)
        toolchain = _toolchain_id(chosen, python)
        model_digest = hashlib.sha256(prepared.SerializeToString()).digest()
        options = {
            "backend": chosen,
            "optimization_level": int(optimization_level),
            "model_script": script or "",
            "calibration": calibration_digest(feeds),
            "normalization": [(n.input, n.mean, n.std, n.nodes) for n in normalizations],
        }
        results: list[PartitionResult] = []
        for i, part in enumerate(partitions):
            display.prefix = f"partition {i + 1}/{len(partitions)}: "
            key = cache_key(model_digest, part, arch_name, options, toolchain)
            t0 = time.time()
            cp = store.get(key)
            hit = cp is not None
            if cp is None:
                if chosen == "dfc":
                    from .dfc import compile_partition_dfc

                    cp = compile_partition_dfc(
                        prepared,
                        part,
                        feeds,
                        arch_name,
                        normalizations=normalizations,
                        model_script=script,
                        optimization_level=optimization_level,
                        dfc_python=python,
                        timeout=timeout,
                        progress=display,
                    )
                else:
                    from .emulate import compile_partition_emulated

                    cp = compile_partition_emulated(
                        prepared, part, feeds, arch_name, progress=display
                    )
                store.put(key, cp)
            payload = cp.hef if cp.hef is not None else (cp.emulation or b"")
            results.append(PartitionResult(i, cp.backend, hit, time.time() - t0, len(payload), cp))
        display.prefix = ""

        # 5. embed and write
        display.stage("embed")
        out_model = _embed(prepared, [r.compiled for r in results], flavour)
        dynamic = _restore_dynamic_batch(original, out_model)
        data = out_model.SerializeToString()
        if out_path is not None:
            write_bytes_atomic(out_path, data)

        result = CompileResult(
            model=out_model,
            path=out_path,
            arch=arch_name,
            backend=chosen,
            partitions=results,
            calibration_samples=len(feeds),
            seconds=time.time() - t_start,
        )
        result.summary = summarize(result, inspected, model, len(data), note)
        if dynamic:
            dims = ", ".join(sorted(set(dynamic["inputs"].values())))
            result.summary += (
                f"\nbatch: the dynamic batch dim ({dims}) is kept; compiled per frame, a session "
                "runs N frames one at a time"
            )
    for warning in low_accuracy_warnings(result):
        warnings.warn(warning, AccuracyWarning, stacklevel=2)
    return result


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n} B"


def _fmt_tensors(specs: Sequence[Any]) -> str:
    return ", ".join(f"{t.name} {list(t.shape)}" for t in specs)


class AccuracyWarning(UserWarning):
    """A compiled partition output is far from float (held-out cosine below LOW_COSINE)."""


#: Held-out cosine similarity against float below which the compile result is flagged.
LOW_COSINE = 0.9


def low_accuracy_warnings(result: CompileResult) -> list[str]:
    """One message per partition output whose cosine similarity to float is below LOW_COSINE."""
    found = []
    for r in result.partitions:
        for tensor, a in (r.compiled.report.get("accuracy") or {}).items():
            if a.get("cosine", 1.0) < LOW_COSINE:
                found.append(
                    f"partition {r.index} output {tensor}: cosine {a['cosine']:.4f} against "
                    f"float is below {LOW_COSINE} (8-bit quantization loses this tensor; check "
                    "the calibration data, or keep the layers before it on the CPU with --ops)"
                )
    return found


def summarize(result: CompileResult, inspected: Any, model: Any, size: int, note: str = "") -> str:
    """Human-readable summary: what went where, sizes, time, cache, accuracy."""
    src = str(model) if isinstance(model, (str, os.PathLike)) else "model"
    dst = str(result.path) if result.path else "(not written)"
    lines = [
        f"compiled {src} -> {dst} ({_fmt_bytes(size)}) for {result.arch} in {result.seconds:.1f} s",
    ]
    if result.backend == "emulate":
        lines.append(
            "backend: emulate (predicts 8-bit quantization effects; not the Hailo compiler)"
        )
    else:
        lines.append(f"backend: dfc ({result.partitions[0].compiled.toolchain.get('dfc', '?')})")
    if note:
        lines.append(f"note: {note}")
    lines.append(f"calibration: {result.calibration_samples} samples")
    total_flops = getattr(getattr(inspected, "prepared", None), "total_flops", 0) or 0
    for r in result.partitions:
        p = r.compiled.partition
        share = (
            f", {100.0 * p.flops / total_flops:.1f}% of FLOPs" if total_flops and p.flops else ""
        )
        lines.append(
            f"partition {r.index}: {len(p.nodes)} nodes{share}; {_fmt_tensors(p.inputs)} -> "
            f"{_fmt_tensors(p.outputs)}; {r.backend} payload {_fmt_bytes(r.payload_bytes)}; "
            f"{'cache hit' if r.cache_hit else f'compiled in {r.seconds:.1f} s'}"
        )
        changed = r.compiled.report.get("end_nodes_changed")
        if changed:
            lines.append(f"  end nodes changed by the DFC: {changed['from']} -> {changed['to']}")
        acc = r.compiled.report.get("accuracy") or {}
        if acc:
            held = r.compiled.report.get("heldout_samples", "?")
            where = "in-sample" if r.compiled.report.get("in_sample") else f"{held} held-out"
            for tensor, a in acc.items():
                lines.append(
                    f"  accuracy vs float ({where}) {tensor}: cosine {a['cosine']:.4f}, "
                    f"SNR {a['snr_db']:.1f} dB, max abs error {a['max_abs_error']:.4g}"
                )
    for warning in low_accuracy_warnings(result):
        lines.append(f"WARNING: {warning}")
    cpu = list(getattr(inspected, "cpu_nodes", []) or [])
    if cpu:
        shown = ", ".join(f"{n.name} ({n.op_type})" for n in cpu[:6])
        more = f" and {len(cpu) - 6} more" if len(cpu) > 6 else ""
        lines.append(f"cpu: {len(cpu)} nodes: {shown}{more}")
    return "\n".join(lines)


class _CallableModule(types.ModuleType):
    """``hailo_ort.compile`` is both this package and the function: once any submodule is
    imported, the attribute on ``hailo_ort`` is the package, so the package is made callable."""

    def __call__(self, *args: Any, **kwargs: Any) -> CompileResult:
        return compile(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
