"""The DFC backend: drives the Hailo Dataflow Compiler in its own Python environment.

The DFC (``hailo_sdk_client``) needs x86-64 Linux, an old Python and pinned TensorFlow, so it
usually lives in a separate virtualenv. :func:`find_dfc_python` locates that environment's
interpreter (``dfc_python=`` / ``--dfc-python``, env ``HAILO_DFC_PYTHON``, or this Python when
``hailo_sdk_client`` is importable here); :func:`run_worker` runs :mod:`dfc_worker` in it as a
subprocess with a timeout, follows its JSON progress lines and keeps its log.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..errors import CompileError
from ..graph.subgraph import value_infos
from ..hailoop.types import CompiledPartition, StreamSpec
from ..hef import read as read_hef
from ..hef.reader import DEVICE_FORMAT_ORDERS
from ..partition.types import Normalization, Partition, TensorSpec
from .common import check_partition, iter_boundary_values, net_name

WORKER = Path(__file__).with_name("dfc_worker.py")
DEFAULT_TIMEOUT = 12 * 3600.0  # optimisation takes hours on a CPU

DFC_HELP = (
    "point at the Python of the environment where the Hailo Dataflow Compiler is installed "
    "with --dfc-python PATH (or dfc_python=, or env HAILO_DFC_PYTHON), "
    "or use --backend emulate"
)


def find_dfc_python(explicit: str | os.PathLike[str] | None = None) -> str | None:
    """The interpreter to run the DFC worker in, or None when no DFC is configured.

    Order: ``explicit``, env ``HAILO_DFC_PYTHON``, this interpreter when ``hailo_sdk_client``
    is importable here. A path that is given but does not exist raises CompileError.
    """
    for source, value in (("--dfc-python", explicit), ("HAILO_DFC_PYTHON", None)):
        if source == "HAILO_DFC_PYTHON":
            value = os.environ.get("HAILO_DFC_PYTHON") or None
        if value is None:
            continue
        path = shutil.which(str(value)) or str(value)
        if Path(path).is_dir():  # a virtualenv folder: its interpreter
            path = str(Path(path) / "bin" / "python")
        if not Path(path).is_file() or not os.access(path, os.X_OK):
            raise CompileError(f"DFC python {value!r} (from {source}) is not an executable file")
        return path
    if importlib.util.find_spec("hailo_sdk_client") is not None:
        return sys.executable
    return None


def require_dfc_python(explicit: str | os.PathLike[str] | None = None) -> str:
    """Like :func:`find_dfc_python`, but a missing DFC is a CompileError saying what to do."""
    path = find_dfc_python(explicit)
    if path is None:
        raise CompileError(
            f"the Hailo Dataflow Compiler (hailo_sdk_client) was not found: {DFC_HELP}"
        )
    return path


def dfc_version(python: str, timeout: float = 60.0) -> str:
    """Version of the DFC installed for ``python`` (from package metadata, without importing it)."""
    code = (
        "import importlib.metadata as m\n"
        "for d in ('hailo_dataflow_compiler', 'hailo-dataflow-compiler', 'hailo_sdk_client'):\n"
        "    try:\n"
        "        print(m.version(d)); break\n"
        "    except Exception:\n"
        "        pass\n"
        "else:\n"
        "    print('unknown')\n"
    )
    try:
        out = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (out.stdout.strip().splitlines() or ["unknown"])[-1]


def build_model_script(
    normalizations: Sequence[Normalization] = (),
    user_script: str | None = None,
    optimization_level: int = 2,
) -> str:
    """The DFC model script: the found normalisation, the user's script, the optimisation level.

    ``model_optimization_flavor`` is added only when the user's script does not set it.
    """
    lines = []
    multi = len(normalizations) > 1
    for i, norm in enumerate(normalizations, start=1):
        mean = ", ".join(f"{v:g}" for v in norm.mean)
        std = ", ".join(f"{v:g}" for v in norm.std)
        target = f", input_layer{i}" if multi else ""
        lines.append(f"normalization{i} = normalization([{mean}], [{std}]{target})")
    if user_script and user_script.strip():
        lines.append(user_script.strip())
    if not user_script or "model_optimization_flavor" not in user_script:
        lines.append(f"model_optimization_flavor(optimization_level={int(optimization_level)})")
    return "\n".join(lines) + "\n"


@dataclass
class DfcRun:
    """What a successful worker run produced."""

    hef: bytes
    end_node_names: list[str]
    recommendation: dict[str, Any] | None
    dfc_version: str
    log_path: Path
    stage_seconds: dict[str, float] = field(default_factory=dict)


def _log_tail(path: Path, lines: int = 6) -> str:
    """The last meaningful lines of a DFC log, on one line (traceback frames left out)."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    kept = [
        line.strip()
        for line in text
        if line.strip() and not line[:1].isspace() and not line.startswith("Traceback")
    ]
    if not kept:
        return ""
    return "; last log lines: " + " | ".join(kept[-lines:])


def _error_message(event: dict[str, Any], job: dict[str, Any], python: str) -> str:
    kind = event.get("kind", "other")
    msg = event.get("message", "")
    stage = event.get("stage", "?")
    start, end = job.get("start_node_names", []), job.get("end_node_names", [])
    if kind == "import":
        return f"{python} cannot import hailo_sdk_client ({msg}): {DFC_HELP}"
    if kind == "misspell":
        return (
            f"DFC parser: a node name was not found ({msg}); start nodes {start}, end nodes {end}"
        )
    if kind == "unsupported":
        node = next((n for n in job.get("partition_nodes", []) if n and n in msg), None)
        where = f"node {node!r}: " if node else ""
        return f"DFC parser cannot translate {where}{msg} (start nodes {start}, end nodes {end})"
    if kind == "recommendation":
        rec = event.get("recommended_end_node_names") or []
        return f"DFC parser failed at end nodes {end} (its recommendation: {rec}): {msg}"
    if kind == "allocation":
        node = next((n for n in job.get("partition_nodes", []) if n and n in msg), None)
        where = f" at node {node!r}" if node else ""
        return (
            f"DFC compiler could not fit the partition on {job.get('hw_arch')}{where} "
            f"(resource allocation failed): {msg}; try a smaller partition or "
            "resources_param(max_utilization=...) in a model script"
        )
    if kind == "job":
        return f"bad DFC job: {msg}"
    return f"DFC {stage} failed: {event.get('exception', 'error')}: {msg}"


def run_worker(
    job: dict[str, Any],
    python: str,
    workdir: Path,
    *,
    timeout: float | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    env: dict[str, str] | None = None,
) -> DfcRun:
    """Run the DFC worker on ``job`` with ``python``; raise CompileError on any failure.

    The worker's stderr (the DFC's own log) is kept in ``workdir/dfc.log``; on failure the
    error names that file and quotes its last lines.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    job_path = workdir / "job.json"
    job_path.write_text(json.dumps(job, indent=1))
    log_path = workdir / "dfc.log"
    timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
    events: list[dict[str, Any]] = []
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.Popen(
                [python, str(WORKER), str(job_path)],
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise CompileError(
                f"cannot start the DFC python {python!r}: {exc}; {DFC_HELP}"
            ) from exc

        def reader() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").strip()
                try:
                    event = json.loads(line)
                except ValueError:
                    log.write(raw)  # stray output of the DFC on stdout: keep it in the log
                    continue
                if not isinstance(event, dict):
                    continue
                events.append(event)
                if on_event is not None:
                    try:
                        on_event(event)
                    except Exception:
                        pass

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            thread.join(5)
            raise CompileError(
                f"the DFC did not finish within {timeout:g} s and was stopped; "
                f"DFC log: {log_path}{_log_tail(log_path)}"
            ) from None
        except BaseException:
            _kill(proc)
            raise
        thread.join(10)

    done = next((e for e in events if e.get("event") == "done"), None)
    error = next((e for e in events if e.get("event") == "error"), None)
    if code != 0 or done is None:
        if error is not None:
            message = _error_message(error, job, python)
        else:
            message = f"the DFC worker exited with code {code} without a result"
        raise CompileError(f"{message}; DFC log: {log_path}{_log_tail(log_path)}")
    hef_path = Path(done.get("hef", job["output_hef"]))
    try:
        hef = hef_path.read_bytes()
    except OSError as exc:
        raise CompileError(
            f"the DFC reported a HEF at {hef_path} but it cannot be read: {exc}"
        ) from exc
    rec = next((e for e in events if e.get("event") == "recommendation"), None)
    info = next((e for e in events if e.get("event") == "info"), {})
    seconds = {
        e["stage"]: float(e.get("seconds", 0.0))
        for e in events
        if e.get("event") == "stage" and e.get("status") == "done"
    }
    return DfcRun(
        hef=hef,
        end_node_names=list(done.get("end_node_names", job["end_node_names"])),
        recommendation=rec,
        dfc_version=str(info.get("dfc_version", "unknown")),
        log_path=log_path,
        stage_seconds=seconds,
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Stop the worker and its children (it runs in its own session / process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


# ---------------------------------------------------------------------------------------------
# From partition to job, and from HEF to StreamSpecs


def shrink_partition(
    model: onnx.ModelProto, partition: Partition, end_nodes: Sequence[str]
) -> Partition:
    """The partition cut at new ``end_nodes`` (the DFC parser's recommendation).

    Keeps the partition's nodes that the new end nodes depend on; the rest stay on the CPU.
    End nodes outside the partition are a CompileError.
    """
    in_partition = set(partition.nodes)
    outside = [n for n in end_nodes if n not in in_partition]
    if outside:
        raise CompileError(
            f"the DFC recommends end nodes {outside} outside partition {partition.index}"
        )
    nodes = {n.name: n for n in model.graph.node}
    producer = {o: n.name for n in model.graph.node for o in n.output if n.name in in_partition}
    keep: set[str] = set()
    stack = list(end_nodes)
    while stack:
        name = stack.pop()
        if name in keep:
            continue
        keep.add(name)
        stack.extend(producer[t] for t in nodes[name].input if t in producer)
    ordered = [n for n in partition.nodes if n in keep]
    produced_inside = {o for n in ordered for o in nodes[n].output}
    consumers_outside = {
        t for n in model.graph.node if n.name not in keep for t in n.input if t in produced_inside
    }
    graph_outputs = {o.name for o in model.graph.output}
    infos = value_infos(model)
    outputs = []
    for name in ordered:
        for t in nodes[name].output:
            if t and (t in consumers_outside or t in graph_outputs):
                outputs.append(_spec(t, infos))
    used = {t for n in ordered for t in nodes[n].input}
    inputs = [t for t in partition.inputs if t.name in used]
    return Partition(
        index=partition.index,
        nodes=ordered,
        start_nodes=[n for n in partition.start_nodes if n in keep],
        end_nodes=list(end_nodes),
        inputs=inputs,
        outputs=outputs,
        flops=partition.flops,
        params=partition.params,
    )


def _spec(tensor: str, infos: dict[str, onnx.ValueInfoProto]) -> TensorSpec:
    vi = infos.get(tensor)
    if vi is None:
        raise CompileError(f"tensor {tensor!r} has no type in the model: run shape inference")
    tt = vi.type.tensor_type
    shape = [int(d.dim_value) for d in tt.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
    return TensorSpec(tensor, shape, dtype)


def net_input_shapes(model: onnx.ModelProto, partition: Partition) -> dict[str, list[int]]:
    """Shapes of the tensors the start nodes read (not weights): the parser's net_input_shapes."""
    inits = {i.name for i in model.graph.initializer}
    constants = {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    by_name = {n.name: n for n in model.graph.node}
    infos = value_infos(model)
    shapes: dict[str, list[int]] = {}
    for start in partition.start_nodes:
        if start not in by_name:
            raise CompileError(
                f"start node {start!r} of partition {partition.index} is not in the model"
            )
        for t in by_name[start].input:
            if t and t not in inits and t not in constants:
                shapes[t] = _spec(t, infos).shape
    return shapes


def partition_normalizations(
    partition: Partition, normalizations: Sequence[Normalization]
) -> list[Normalization]:
    """The normalisations the DFC should apply through its model script.

    Those whose nodes are all inside the partition but before its start nodes: the parser
    skips them, so the partition's input stays the raw model input and the DFC's
    ``normalization`` layer does their work on the device.
    """
    inside = set(partition.nodes)
    starts = set(partition.start_nodes)
    return [
        n
        for n in normalizations
        if n.nodes and set(n.nodes) <= inside and not set(n.nodes) & starts
    ]


def write_calibration(
    model: onnx.ModelProto,
    partition: Partition,
    calibration: Sequence[dict[str, np.ndarray]],
    workdir: Path,
    net: str,
) -> str | dict[str, str]:
    """Save the partition's boundary inputs as NHWC float32 .npy files (the DFC's layout).

    Samples are computed and written one at a time (memory holds one sample, not the set).
    """
    names = [t.name for t in partition.inputs]
    paths: dict[str, str] = {}
    files: dict[str, np.ndarray] = {}
    at = 0
    for row in iter_boundary_values(model, names, calibration):
        frames = 0
        for i, name in enumerate(names, start=1):
            # each sample is shaped as the tensor ([N, C, H, W]): frames along the first axis
            x = np.asarray(row[name], np.float32)
            if x.ndim == 4:
                x = np.transpose(x, (0, 2, 3, 1))
            if name not in files:
                path = workdir / f"calib_{i}.npy"
                shape = (x.shape[0] * len(calibration), *x.shape[1:])
                files[name] = np.lib.format.open_memmap(
                    path, mode="w+", dtype=np.float32, shape=shape
                )
                paths[f"{net}/input_layer{i}"] = str(path)
            files[name][at : at + x.shape[0]] = x
            frames = x.shape[0]
        at += frames
    for arr in files.values():
        arr.flush()
    del files
    if len(paths) == 1:
        return next(iter(paths.values()))
    return paths


def _order_name(value: Any) -> str:
    if isinstance(value, int):
        return DEVICE_FORMAT_ORDERS.get(value, f"UNKNOWN({value})")
    return str(getattr(value, "name", value)).upper().rsplit(".", 1)[-1]


def _dtype_name(value: Any) -> str:
    text = str(getattr(value, "name", value)).upper()
    if value == 2 or "16" in text:
        return "uint16"
    if "FLOAT" in text:
        return "float32"
    return "uint8"


def _stream(info: Any, tensor: TensorSpec) -> StreamSpec:
    order = _order_name(info.format_order)
    dims = [int(v) for v in info.shape][-3:]
    h, w, c = [1] * (3 - len(dims)) + dims
    host = list(tensor.shape)
    if order in ("NC",):
        device_shape, device_order = [1, c], "NC"
    elif order in ("NHWC", "NHCW", "FCR", "F8CR"):
        device_shape, device_order = [1, h, w, c], "NHWC"
    elif order == "NHW":
        device_shape, device_order = [1, h, w], "NHW"
    else:
        raise CompileError(f"vstream {info.name} has format {order}, which hailo-ort cannot map")
    # A HEF's vstreams carry one frame; the partition tensor may hold N of them.
    if int(np.prod(host[1:])) != int(np.prod(device_shape[1:])):
        raise CompileError(
            f"HEF vstream {info.name} is {h}x{w}x{c} ({order}) but the partition tensor "
            f"{tensor.name!r} is {host}"
        )
    if len(host) == 4 and device_order == "NHWC" and [host[1], host[2], host[3]] != [c, h, w]:
        raise CompileError(
            f"HEF vstream {info.name} is {h}x{w}x{c} but the partition tensor {tensor.name!r} "
            f"is NCHW {host}"
        )
    host_order = {4: "NCHW", 2: "NC", 3: "NHW"}.get(len(host), "NC")
    return StreamSpec(
        vstream=info.name,
        tensor=tensor.name,
        shape=host,
        dtype=tensor.dtype,
        device_shape=device_shape,
        device_order=device_order,
        device_dtype=_dtype_name(info.format_type),
        quant=info.quant,
        host_order=host_order,
    )


def _match(
    infos: Sequence[Any], tensors: Sequence[TensorSpec], related: dict[str, set[str]], what: str
) -> list[Any]:
    """Order ``infos`` like ``tensors``: by original_names (nodes related to the tensor), else
    by position when the rest cannot be told apart."""
    if len(infos) != len(tensors):
        raise CompileError(
            f"the HEF has {len(infos)} {what} vstreams but the partition has {len(tensors)} "
            f"{what}s ({[t.name for t in tensors]})"
        )
    chosen: list[Any] = [None] * len(tensors)
    free = list(infos)
    for i, t in enumerate(tensors):
        names = related.get(t.name, set()) | {t.name}
        hit = next((v for v in free if names & set(getattr(v, "original_names", []) or [])), None)
        if hit is not None:
            chosen[i] = hit
            free.remove(hit)
    for i in range(len(tensors)):
        if chosen[i] is None:
            chosen[i] = free.pop(0)
    return chosen


def streams_from_hef(
    hef: Any, model: onnx.ModelProto, partition: Partition
) -> tuple[list[StreamSpec], list[StreamSpec]]:
    """StreamSpecs of the partition's boundary tensors from a parsed HEF (``hailo_ort.hef.read``).

    Output vstreams are matched to tensors by ``original_names`` (the ONNX nodes they came
    from: the tensor's producer); inputs by the nodes consuming the tensor; what is left by order.
    """
    if not getattr(hef, "network_groups", None):
        raise CompileError("the HEF the DFC produced has no network group")
    group = hef.network_groups[0]
    in_partition = set(partition.nodes)
    producers: dict[str, set[str]] = {}
    consumers: dict[str, set[str]] = {}
    for n in model.graph.node:
        for t in n.output:
            producers.setdefault(t, set()).add(n.name)
        if n.name in in_partition:
            for t in n.input:
                consumers.setdefault(t, set()).add(n.name)
    ins = _match(group.inputs, partition.inputs, consumers, "input")
    outs = _match(group.outputs, partition.outputs, producers, "output")
    return (
        [_stream(v, t) for v, t in zip(ins, partition.inputs)],
        [_stream(v, t) for v, t in zip(outs, partition.outputs)],
    )


def prepare_job(
    model: onnx.ModelProto,
    partition: Partition,
    calibration: Sequence[dict[str, np.ndarray]],
    arch: str,
    workdir: Path,
    *,
    normalizations: Sequence[Normalization] = (),
    model_script: str | None = None,
    optimization_level: int = 2,
) -> dict[str, Any]:
    """Write the model and NHWC calibration into ``workdir`` and return the worker's job."""
    check_partition(partition)
    if not calibration:
        raise CompileError("the DFC needs calibration data (at least one sample)")
    workdir.mkdir(parents=True, exist_ok=True)
    net = net_name(model, partition)
    onnx_path = workdir / "model.onnx"
    onnx.save(model, str(onnx_path))
    calib = write_calibration(model, partition, calibration, workdir, net)
    norms = partition_normalizations(partition, normalizations)
    return {
        "onnx_path": str(onnx_path),
        "net_name": net,
        "start_node_names": list(partition.start_nodes),
        "end_node_names": list(partition.end_nodes),
        "net_input_shapes": net_input_shapes(model, partition),
        "hw_arch": arch,
        "model_script": build_model_script(norms, model_script, optimization_level),
        "optimization_level": int(optimization_level),
        "calib": calib,
        "output_hef": str(workdir / f"{net}.hef"),
        "partition_nodes": list(partition.nodes),
    }


def compile_partition_dfc(
    model: onnx.ModelProto,
    partition: Partition,
    calibration: Sequence[dict[str, np.ndarray]],
    arch: str,
    *,
    normalizations: Sequence[Normalization] = (),
    model_script: str | None = None,
    optimization_level: int = 2,
    dfc_python: str | None = None,
    timeout: float | None = None,
    progress: Any = None,
    workdir: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
) -> CompiledPartition:
    """Compile ``partition`` of the prepared ``model`` to a HEF with the DFC.

    ``calibration`` holds feeds of the full model's inputs; the partition's boundary inputs are
    computed from them and handed to the DFC in NHWC. When the parser recommends other end
    nodes, the partition is cut there (the rest stays on the CPU) and the change is recorded in
    ``report["end_nodes_changed"]``. Every failure is a CompileError naming the problem.
    """
    check_partition(partition)
    if not calibration:
        raise CompileError("the DFC needs calibration data (at least one sample)")
    python = require_dfc_python(dfc_python)
    own_workdir = workdir is None
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="hailo-ort-dfc-"))
    try:
        return _compile_in(
            model, partition, calibration, arch, work, own_workdir, python,
            normalizations=normalizations, model_script=model_script,
            optimization_level=optimization_level, timeout=timeout, progress=progress, env=env,
        )  # fmt: skip
    except BaseException:
        # keep the log, the job and the model for a rerun; drop the (large) calibration set
        for npy in work.glob("calib_*.npy"):
            npy.unlink(missing_ok=True)
        raise


def _compile_in(
    model: onnx.ModelProto,
    partition: Partition,
    calibration: Sequence[dict[str, np.ndarray]],
    arch: str,
    work: Path,
    own_workdir: bool,
    python: str,
    *,
    normalizations: Sequence[Normalization],
    model_script: str | None,
    optimization_level: int,
    timeout: float | None,
    progress: Any,
    env: dict[str, str] | None,
) -> CompiledPartition:
    """The body of :func:`compile_partition_dfc`, in the work folder ``work``."""
    if progress is not None:
        progress.stage("calibration set")
    job = prepare_job(
        model,
        partition,
        calibration,
        arch,
        work,
        normalizations=normalizations,
        model_script=model_script,
        optimization_level=optimization_level,
    )

    def on_event(event: dict[str, Any]) -> None:
        if (
            progress is not None
            and event.get("event") == "stage"
            and event.get("status") == "start"
        ):
            progress.stage(f"DFC {event['stage']}")

    t0 = time.time()
    result = run_worker(job, python, work, timeout=timeout, on_event=on_event, env=env)
    elapsed = time.time() - t0

    report: dict[str, Any] = {
        "stage_seconds": result.stage_seconds,
        "seconds": round(elapsed, 3),
        "model_script": job["model_script"],
    }
    if result.end_node_names != list(partition.end_nodes):
        report["end_nodes_changed"] = {
            "from": list(partition.end_nodes),
            "to": list(result.end_node_names),
            "reason": (result.recommendation or {}).get("message", "DFC parser recommendation"),
        }
        partition = shrink_partition(model, partition, result.end_node_names)

    try:
        hef = read_hef(result.hef)
    except Exception as exc:
        raise CompileError(f"the HEF the DFC produced cannot be read: {exc}") from exc
    inputs, outputs = streams_from_hef(hef, model, partition)
    if own_workdir:
        shutil.rmtree(work, ignore_errors=True)  # kept on failure, for its log
    else:
        report["dfc_log"] = str(result.log_path)
    return CompiledPartition(
        partition=partition,
        arch=arch,
        backend="dfc",
        inputs=inputs,
        outputs=outputs,
        hef=result.hef,
        toolchain={"tool": "Hailo Dataflow Compiler", "dfc": result.dfc_version, "python": python},
        report=report,
    )
