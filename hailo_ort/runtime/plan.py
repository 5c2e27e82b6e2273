"""The session plan: CPU segments (onnxruntime sessions) and device segments (HailoOp nodes).

Nodes are staged so that CPU segment ``s`` runs before device wave ``s``: a CPU node's stage is
the largest of its CPU predecessors' stages and its device predecessors' waves + 1; a device
node's wave is computed the same way. Tensors pass between steps as numpy arrays (no copies);
device inputs go through :mod:`hailo_ort.transforms` into pooled page-aligned buffers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .. import transforms
from ..errors import DeviceError, HailoOpFormatError, HailoOrtError, ModelError
from ..graph.subgraph import extract_subgraph
from ..hailoop.reader import hailo_node_name, is_hailo_op, read
from ..hailoop.types import CompiledPartition, StreamSpec
from ..quant import QuantInfo
from .devices.base import Device, DeviceOutputs, LoadedPartition
from .providers import HailoOptions
from .timing import StageTimer

_log = logging.getLogger("hailo_ort")
_logged: set[str] = set()
_logged_lock = threading.Lock()


def log_once(level: int, message: str) -> None:
    """Log ``message`` on the "hailo_ort" logger the first time it is seen in this process."""
    with _logged_lock:
        if message in _logged:
            return
        _logged.add(message)
    _log.log(level, message)


def has_hailo_ops(model: onnx.ModelProto) -> bool:
    """Whether the main graph holds ``ai.hailo::HailoOp`` nodes (a scan, no parsing)."""
    return any(is_hailo_op(n) for n in model.graph.node)


@dataclass
class HailoOpSite:
    """One HailoOp node of the model with what the reader found in it."""

    node: onnx.NodeProto
    compiled: CompiledPartition
    has_fallback: bool

    @property
    def name(self) -> str:
        return self.node.name or self.node.output[0]


def read_hailo_ops(model: onnx.ModelProto) -> list[HailoOpSite]:
    """The HailoOp nodes of ``model``, parsed by :func:`hailo_ort.hailoop.read`.

    This is the only place the runtime depends on the HailoOp format.
    """
    by_name = {n.name: n for n in model.graph.node if is_hailo_op(n)}
    try:
        nodes = list(read(model))
    except HailoOrtError:
        raise
    except Exception as exc:
        raise HailoOpFormatError(f"malformed HailoOp node: {exc}") from exc
    sites = []
    for found in nodes:
        node = by_name.get(found.node_name)
        if node is None:
            raise HailoOpFormatError(f"HailoOp node {found.node_name!r} not found in the graph")
        compiled = found.compiled
        if len(compiled.inputs) != len(node.input) or len(compiled.outputs) != len(node.output):
            raise HailoOpFormatError(
                f"HailoOp node {found.node_name!r} has {len(node.input)} inputs / "
                f"{len(node.output)} outputs but {len(compiled.inputs)} / "
                f"{len(compiled.outputs)} streams"
            )
        sites.append(HailoOpSite(node, compiled, bool(found.has_fallback)))
    return sites


# ---- graph helpers ------------------------------------------------------------------------


def _subgraph_reads(graph: onnx.GraphProto) -> set[str]:
    """Names a nested graph reads from its outer scope."""
    defined = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    reads: set[str] = set()
    for node in graph.node:
        for name in _node_reads(node):
            if name not in defined:
                reads.add(name)
        defined.update(node.output)
    for out in graph.output:
        if out.name not in defined:
            reads.add(out.name)
    return reads


def _node_reads(node: onnx.NodeProto) -> list[str]:
    """Every tensor ``node`` reads: its inputs and the outer-scope names its subgraphs use."""
    reads = [x for x in node.input if x]
    for attr in node.attribute:
        graphs = list(attr.graphs)
        if attr.HasField("g"):
            graphs.append(attr.g)
        for g in graphs:
            reads.extend(sorted(_subgraph_reads(g)))
    return reads


_ONNX_TO_ORT_TYPE = {
    onnx.TensorProto.FLOAT: "tensor(float)",
    onnx.TensorProto.UINT8: "tensor(uint8)",
    onnx.TensorProto.INT8: "tensor(int8)",
    onnx.TensorProto.UINT16: "tensor(uint16)",
    onnx.TensorProto.INT16: "tensor(int16)",
    onnx.TensorProto.INT32: "tensor(int32)",
    onnx.TensorProto.INT64: "tensor(int64)",
    onnx.TensorProto.STRING: "tensor(string)",
    onnx.TensorProto.BOOL: "tensor(bool)",
    onnx.TensorProto.FLOAT16: "tensor(float16)",
    onnx.TensorProto.DOUBLE: "tensor(double)",
    onnx.TensorProto.UINT32: "tensor(uint32)",
    onnx.TensorProto.UINT64: "tensor(uint64)",
    onnx.TensorProto.BFLOAT16: "tensor(bfloat16)",
}


def ort_type_name(elem_type: int) -> str:
    """ONNX Runtime's name of a tensor element type, e.g. "tensor(float)"."""
    return _ONNX_TO_ORT_TYPE.get(
        elem_type, f"tensor({onnx.TensorProto.DataType.Name(elem_type).lower()})"
    )


def _typed_model(model: onnx.ModelProto, sites: Sequence[HailoOpSite]) -> onnx.ModelProto:
    """``model`` with inferred shapes, and HailoOp outputs typed from their streams if needed."""
    typed = onnx.ModelProto()
    typed.CopyFrom(model)
    # Sub-models are cut by node name: give unnamed or clashing CPU nodes unique names.
    taken = {n.name for n in typed.graph.node if is_hailo_op(n)}
    for idx, node in enumerate(typed.graph.node):
        if is_hailo_op(node):
            continue
        if not node.name or node.name in taken:
            base = f"{node.name or node.op_type}_{idx}"
            name, k = base, 0
            while name in taken:
                k += 1
                name = f"{base}_{k}"
            node.name = name
        taken.add(node.name)
    known = {vi.name for vi in list(typed.graph.value_info) + list(typed.graph.output)}
    for site in sites:
        for tensor, spec in zip(site.node.output, site.compiled.outputs):
            if tensor and tensor not in known:
                elem = helper.np_dtype_to_tensor_dtype(np.dtype(spec.dtype))
                typed.graph.value_info.append(
                    helper.make_tensor_value_info(tensor, elem, list(spec.shape))
                )
    try:
        return onnx.shape_inference.infer_shapes(typed)
    except Exception as exc:  # an unusual model: keep the declared types
        _log.debug("shape inference failed (%s); using declared types only", exc)
        return typed


# ---- steps --------------------------------------------------------------------------------


class CpuStep:
    """A CPU segment: one onnxruntime session over an extracted sub-model."""

    def __init__(
        self,
        name: str,
        model: onnx.ModelProto,
        inputs: list[str],
        outputs: list[str],
        make_session: Any,
    ) -> None:
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.session = make_session(model)
        self.timer: StageTimer | None = None

    def run(self, values: dict[str, Any], run_options: Any = None) -> None:
        timer = self.timer
        start = time.perf_counter() if timer is not None else 0.0
        result = self.session.run(
            self.outputs, {name: values[name] for name in self.inputs}, run_options
        )
        values.update(zip(self.outputs, result))
        if timer is not None:
            timer.add(self.name, time.perf_counter() - start)


class _BufferPool:
    """Page-aligned device input buffers, reused across runs (thread-safe)."""

    def __init__(self) -> None:
        self._free: dict[tuple[tuple[int, ...], str], list[np.ndarray]] = {}
        self._lock = threading.Lock()

    def acquire(self, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        key = (shape, dtype)
        with self._lock:
            free = self._free.get(key)
            if free:
                return free.pop()
        from .. import _native

        return _native.aligned_empty(list(shape), np.dtype(dtype))

    def release(self, buffers: Iterable[np.ndarray]) -> None:
        with self._lock:
            for buf in buffers:
                self._free.setdefault((tuple(buf.shape), buf.dtype.name), []).append(buf)


def _raw_quant(dtype: str) -> QuantInfo:
    """Identity quantization: raw device values pass through unchanged."""
    info = np.iinfo(np.dtype(dtype))
    return QuantInfo(zp=0.0, scale=1.0, limvals_min=float(info.min), limvals_max=float(info.max))


def _stream_quant(spec: StreamSpec) -> tuple[QuantInfo, bool]:
    """The quantization a stream's host transform applies, and whether the host tensor holds
    the raw device values (same dtype on both sides: identity quantization)."""
    raw = np.dtype(spec.dtype) == np.dtype(spec.device_dtype)
    return (_raw_quant(spec.device_dtype) if raw else spec.quant), raw


class DeviceRequest:
    """One request on a device step: its inputs, device buffers and per-batch results."""

    def __init__(self, xs: list[np.ndarray]) -> None:
        self.xs = xs
        self.frames = 0
        self.buffers: list[np.ndarray] = []
        self.results: list[DeviceOutputs | None] = []
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.wait_s = 0.0
        self.t_submit = 0.0
        self.t_done = 0.0
        self._remaining = 0
        self._lock = threading.Lock()

    def expect(self, batches: int) -> None:
        self.results = [None] * batches
        self._remaining = batches

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = exc
        self.done.set()

    def callback(self, index: int) -> Any:
        def finished(out: DeviceOutputs | None, err: BaseException | None) -> None:
            with self._lock:
                if err is not None:
                    if self.error is None:
                        self.error = err
                else:
                    self.results[index] = out
                self._remaining -= 1
                last = self._remaining == 0
            if last:
                self.t_done = time.perf_counter()
                self.done.set()

        return finished


class DeviceStep:
    """A HailoOp node: run on a device, or on the CPU through its float fallback body."""

    def __init__(
        self,
        site: HailoOpSite,
        loaded: LoadedPartition | None,
        options: HailoOptions,
        make_fallback: Any,
    ) -> None:
        self.site = site
        self.name = site.name
        self.loaded = loaded
        self.options = options
        self.inputs = [x for x in site.node.input]
        self.outputs = [y for y in site.node.output]
        self._make_fallback = make_fallback
        self._fallback: Any = None
        self._fallback_lock = threading.Lock()
        self._pool = _BufferPool()
        self.timer: StageTimer | None = None
        # Prepared transforms per (direction, vstream, shape): checked and planned once.
        self._transforms: dict[tuple[bool, str, tuple[int, ...]], transforms.Transform] = {}
        # Per stream, (quantization, raw): fixed by the compiled partition, derived once.
        self._in_quant = {s.vstream: _stream_quant(s) for s in site.compiled.inputs}
        self._out_quant = {s.vstream: _stream_quant(s) for s in site.compiled.outputs}

    # -- CPU fallback ---------------------------------------------------------------------
    def _fallback_session(self) -> Any:
        if self._fallback is None:
            with self._fallback_lock:
                if self._fallback is None:
                    self._fallback = self._make_fallback(self.site)
        return self._fallback

    def _run_fallback(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        return self._fallback_session().run(self.outputs, dict(zip(self.inputs, xs)))

    # -- device -------------------------------------------------------------------------------
    def _to_device(self, spec: StreamSpec, x: np.ndarray, frames: int) -> np.ndarray:
        shape = (frames, *spec.device_shape[1:])
        buf = self._pool.acquire(shape, spec.device_dtype)
        quant = self._in_quant[spec.vstream][0]
        host = x if x.ndim == len(shape) else x.reshape((frames, *spec.shape[1:]))
        try:
            return self._transform(True, spec, quant, host.shape)(host, buf)
        except (TypeError, ValueError):  # another dtype, strided, a wrong shape: general path
            return transforms.to_device(
                host, quant, spec.device_dtype, spec.host_order, spec.device_order, out=buf
            )

    def _transform(
        self, quantizes: bool, spec: StreamSpec, quant: QuantInfo, shape: tuple[int, ...]
    ) -> transforms.Transform:
        key = (quantizes, spec.vstream, tuple(shape))
        prepared = self._transforms.get(key)
        if prepared is None:
            if len(self._transforms) >= 64:  # many batch sizes: keep the cache bounded
                self._transforms.clear()
            prepare = transforms.prepare_to_device if quantizes else transforms.prepare_from_device
            prepared = prepare(quant, spec.device_dtype, spec.host_order, spec.device_order, shape)
            self._transforms[key] = prepared
        return prepared

    def _from_device(self, spec: StreamSpec, q: np.ndarray, frames: int) -> np.ndarray:
        want = (frames, *spec.device_shape[1:])
        if tuple(q.shape) != want or q.dtype != np.dtype(spec.device_dtype):
            raise DeviceError(
                f"{self.name}: device output {spec.vstream} is {q.dtype}{list(q.shape)}, "
                f"expected {spec.device_dtype}{list(want)}"
            )
        quant, raw = self._out_quant[spec.vstream]
        try:
            y = self._transform(False, spec, quant, want)(q)
        except (TypeError, ValueError):  # a strided or misaligned device buffer: general path
            y = transforms.from_device(q, quant, spec.host_order, spec.device_order)
        if raw:
            y = y.astype(spec.device_dtype)
        host_shape = (frames, *spec.shape[1:])
        if tuple(y.shape) != host_shape and y.size == int(np.prod(host_shape)):
            y = y.reshape(host_shape)
        return y

    def start(self, xs: list[np.ndarray]) -> DeviceRequest:
        """Convert ``xs`` to device buffers and submit them; never raises (see complete)."""
        request = DeviceRequest(xs)
        if self.loaded is None:
            return request  # runs on the CPU in complete()
        try:
            self._submit(request)
        except Exception as exc:
            request.fail(exc)
        return request

    def _submit(self, request: DeviceRequest) -> None:
        loaded = self.loaded
        assert loaded is not None
        xs = request.xs
        frames = {int(x.shape[0]) if x.ndim else 1 for x in xs}
        if len(frames) != 1:
            raise DeviceError(f"{self.name}: inputs disagree on the batch size {sorted(frames)}")
        n = request.frames = frames.pop()
        timer = self.timer
        t0 = time.perf_counter() if timer is not None else 0.0
        specs_in = self.site.compiled.inputs
        bufs = request.buffers = [self._to_device(spec, x, n) for spec, x in zip(specs_in, xs)]
        step = max(1, int(loaded.batch_size))
        starts = list(range(0, n, step)) or [0]
        request.expect(len(starts))
        if timer is not None:
            request.t_submit = time.perf_counter()
            timer.add(f"{self.name}:to_device", request.t_submit - t0)
        timeout_ms = self.options.timeout_ms
        request.wait_s = timeout_ms * len(starts) / 1000.0 + 0.5
        for i, first in enumerate(starts):
            chunk = {spec.vstream: buf[first : first + step] for spec, buf in zip(specs_in, bufs)}
            try:
                loaded.infer_async(chunk, request.callback(i), timeout_ms)
            except BaseException as exc:
                request.callback(i)(None, exc)

    def _finish_device(self, request: DeviceRequest) -> list[np.ndarray]:
        if request.error is None and not request.done.wait(request.wait_s):
            # The device enforces the per-batch timeout; this bound keeps a silent device
            # from hanging the request.
            raise DeviceError(
                f"{self.name}: the device did not answer within {self.options.timeout_ms} ms"
            )
        if request.buffers:
            self._pool.release(request.buffers)
            request.buffers = []
        if request.error is not None:
            raise request.error
        timer = self.timer
        if timer is not None:
            timer.add(f"{self.name}:device", request.t_done - request.t_submit)
            t0 = time.perf_counter()
        n = request.frames
        outputs = []
        for spec in self.site.compiled.outputs:
            parts = [
                r[spec.vstream] for r in request.results if r is not None and spec.vstream in r
            ]
            if len(parts) != len(request.results):
                raise DeviceError(f"{self.name}: the device returned no {spec.vstream}")
            q = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
            outputs.append(self._from_device(spec, q, n))
        if timer is not None:
            timer.add(f"{self.name}:from_device", time.perf_counter() - t0)
        return outputs

    def complete(self, request: DeviceRequest) -> list[np.ndarray]:
        """Wait for a started request and return its host outputs (CPU fallback on failure)."""
        if self.loaded is None:
            return self._timed_fallback(request.xs)
        try:
            return self._finish_device(request)
        except Exception as exc:
            return self._on_device_failure(exc, request.xs)

    def _timed_fallback(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        timer = self.timer
        if timer is None:
            return self._run_fallback(xs)
        t0 = time.perf_counter()
        ys = self._run_fallback(xs)
        timer.add(f"{self.name}:cpu_fallback", time.perf_counter() - t0)
        return ys

    def run(self, values: dict[str, Any], run_options: Any = None) -> None:
        xs = [np.asarray(values[name]) for name in self.inputs]
        values.update(zip(self.outputs, self.complete(self.start(xs))))

    def _on_device_failure(self, exc: Exception, xs: list[np.ndarray]) -> list[np.ndarray]:
        if self.options.fallback == "cpu" and self.site.has_fallback:
            log_once(
                logging.WARNING,
                f"HailoOp {self.name}: device failed ({type(exc).__name__}: {exc}); such "
                "requests run on the CPU (float fallback) while the device fails",
            )
            _log.debug(
                "HailoOp %s: device failed (%s); ran this request on the CPU", self.name, exc
            )
            return self._timed_fallback(xs)
        if isinstance(exc, HailoOrtError) and not isinstance(exc, DeviceError):
            raise exc
        hint = (
            "fallback=error"
            if self.site.has_fallback
            else "the node has no float fallback body to run on the CPU"
        )
        raise DeviceError(f"HailoOp {self.name}: device failed: {exc} ({hint})") from exc

    def close(self) -> None:
        if self.loaded is not None:
            self.loaded.close()


# ---- the plan -----------------------------------------------------------------------------


class Plan:
    """CPU and device steps in execution order, built from a model and its HailoOp sites."""

    def __init__(
        self,
        model: onnx.ModelProto,
        sites: Sequence[HailoOpSite],
        loaded: Mapping[str, LoadedPartition | None],
        options: HailoOptions,
        make_session: Any,
    ) -> None:
        self.options = options
        self._make_session = make_session
        typed = _typed_model(model, sites)
        self._typed = typed
        graph = typed.graph
        site_by_node = {s.node.name: s for s in sites}
        initializers = {i.name: i for i in graph.initializer}
        graph_inputs = {i.name for i in graph.input}
        graph_outputs = [o.name for o in graph.output]

        producer: dict[str, int] = {}
        level: list[int] = []
        for idx, node in enumerate(graph.node):
            lv = 0
            for name in _node_reads(node):
                p = producer.get(name)
                if p is None:
                    continue
                pred_dev = graph.node[p].name in site_by_node
                lv = max(lv, level[p] + 1 if pred_dev else level[p])
            level.append(lv)
            for out in node.output:
                if out:
                    producer[out] = idx

        readers: dict[str, set[int]] = {}
        for idx, node in enumerate(graph.node):
            for name in _node_reads(node):
                readers.setdefault(name, set()).add(idx)

        self.constants: dict[str, np.ndarray] = {}
        steps: list[Any] = []
        top = max(level, default=0)
        for stage in range(top + 1):
            cpu_idx = [
                i
                for i, n in enumerate(graph.node)
                if level[i] == stage and n.name not in site_by_node
            ]
            if cpu_idx:
                steps.append(
                    self._cpu_step(
                        f"cpu{stage}",
                        cpu_idx,
                        graph,
                        initializers,
                        graph_inputs,
                        set(graph_outputs),
                        readers,
                    )
                )
            for i, n in enumerate(graph.node):
                if level[i] == stage and n.name in site_by_node:
                    site = site_by_node[n.name]
                    steps.append(
                        DeviceStep(site, loaded.get(n.name), options, self._fallback_model)
                    )
        self.steps = steps
        self._timer: StageTimer | None = None
        self.output_names = graph_outputs
        for site in sites:
            for x in site.node.input:
                if x in initializers:
                    self.constants.setdefault(x, numpy_helper.to_array(initializers[x]))
        for out in graph_outputs:
            if out in initializers and out not in producer:
                self.constants[out] = numpy_helper.to_array(initializers[out])

    def _cpu_step(
        self,
        name: str,
        node_idx: list[int],
        graph: onnx.GraphProto,
        initializers: Mapping[str, onnx.TensorProto],
        graph_inputs: set[str],
        graph_outputs: set[str],
        readers: Mapping[str, set[int]],
    ) -> CpuStep:
        members = set(node_idx)
        produced: list[str] = []
        for i in node_idx:
            produced.extend(o for o in graph.node[i].output if o)
        produced_set = set(produced)
        inputs: list[str] = []
        for i in node_idx:
            node = graph.node[i]
            direct = {x for x in node.input if x}
            for x in _node_reads(node):
                if x in produced_set or x in inputs:
                    continue
                if x in initializers:
                    if x in direct and x not in graph_inputs:
                        continue  # copied into the sub-model by extract_subgraph
                    # read from a subgraph, or overridable (a graph input): fed, default value
                    self.constants.setdefault(x, numpy_helper.to_array(initializers[x]))
                inputs.append(x)
        outputs = [
            t
            for t in produced
            if t in graph_outputs or any(r not in members for r in readers.get(t, ()))
        ]
        sub = extract_subgraph(
            self._typed, [graph.node[i].name for i in node_idx], inputs, outputs, name=name
        )
        return CpuStep(name, sub, inputs, outputs, self._make_session)

    def _fallback_model(self, site: HailoOpSite) -> Any:
        sub = extract_subgraph(
            self._typed,
            [site.node.name],
            list(site.node.input),
            list(site.node.output),
            name=f"{site.name}_fallback",
        )
        return self._make_session(sub)

    @property
    def timer(self) -> StageTimer | None:
        """The per-stage timer (None: timing is off)."""
        return self._timer

    @timer.setter
    def timer(self, timer: StageTimer | None) -> None:
        self._timer = timer
        for step in self.steps:
            step.timer = timer

    @property
    def on_device(self) -> list[str]:
        """Names of the HailoOp nodes that run on the device."""
        return [s.name for s in self.steps if isinstance(s, DeviceStep) and s.loaded is not None]

    @property
    def cpu_sessions(self) -> list[Any]:
        return [s.session for s in self.steps if isinstance(s, CpuStep)]

    def run(
        self, output_names: Sequence[str], feeds: Mapping[str, Any], run_options: Any = None
    ) -> list[Any]:
        values: dict[str, Any] = dict(self.constants)
        values.update(feeds)
        for step in self.steps:
            step.run(values, run_options)
        return [values[name] for name in output_names]

    def close(self) -> None:
        for step in self.steps:
            if isinstance(step, DeviceStep):
                step.close()


def load_partitions(
    sites: Sequence[HailoOpSite], device: Device, options: HailoOptions
) -> dict[str, LoadedPartition | None]:
    """Load every site on ``device``; a site that cannot load runs on the CPU when allowed."""
    loaded: dict[str, LoadedPartition | None] = {}
    try:
        for site in sites:
            try:
                loaded[site.node.name] = device.load(site.compiled, batch_size=options.batch_size)
            except HailoOrtError as exc:
                if options.fallback == "cpu" and site.has_fallback:
                    log_once(
                        logging.WARNING,
                        f"HailoOp {site.name} runs on the CPU: it cannot load on the "
                        f"{device.kind} device ({exc})",
                    )
                    loaded[site.node.name] = None
                else:
                    raise
    except BaseException:
        for part in loaded.values():
            if part is not None:
                part.close()
        raise
    return loaded


def name_hailo_nodes(model: onnx.ModelProto) -> None:
    """Name unnamed HailoOp nodes ``HailoOp_<index in graph.node>``, as the reader calls them."""
    for index, node in enumerate(model.graph.node):
        if is_hailo_op(node) and not node.name:
            node.name = hailo_node_name(node, index)


def check_model_graph(model: onnx.ModelProto) -> None:
    """Reject HailoOp nodes with clashing names (the plan refers to nodes by name)."""
    names = [n.name for n in model.graph.node if is_hailo_op(n)]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ModelError(f"HailoOp node names must be unique; repeated: {', '.join(dup)}")
