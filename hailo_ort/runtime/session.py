"""``hailo_ort.InferenceSession``: a drop-in for ``onnxruntime.InferenceSession``.

A model without HailoOp nodes is a thin pass-through to one onnxruntime session. A model with
HailoOp nodes runs, by the first rule that applies:

1. through Hailo's ONNX Runtime fork, when it is installed and the model is in its flavour;
2. as a plan of CPU segments (onnxruntime) and device segments (HailoRT or the emulator);
3. on the CPU in one onnxruntime session, through the float fallback bodies, when there is no
   device and ``fallback="cpu"`` (a model without fallback bodies raises DeviceError).
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Union

import numpy as np
import onnx
import onnxruntime
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument, InvalidProtobuf, NoSuchFile

from ..errors import CalibrationError, CompileError, DeviceError, HailoOrtError, ModelError
from ..hailoop.format import FORK_MAX_IR_VERSION
from .devices import open_device
from .devices.base import Device
from .pipeline import Job, Pipeline
from .plan import (
    Plan,
    check_model_graph,
    has_hailo_ops,
    is_hailo_op,
    load_partitions,
    log_once,
    name_hailo_nodes,
    ort_type_name,
    read_hailo_ops,
)
from .providers import (
    CPU_PROVIDER,
    HAILO_PROVIDER,
    HailoOptions,
    ProviderChoice,
    ProviderSpec,
    fork_provider_available,
    split_providers,
)
from .timing import StageStats, StageTimer

_log = logging.getLogger("hailo_ort")

ModelSource = Union[str, bytes, os.PathLike, onnx.ModelProto]


class InvalidFeedError(HailoOrtError, InvalidArgument):
    """A bad feed (unknown name, wrong dtype, rank or shape): onnxruntime's InvalidArgument."""


class MissingInputError(HailoOrtError, ValueError):
    """Required inputs are missing from the feed (onnxruntime raises ValueError here too)."""


def _feed_error(exc: Exception) -> Exception:
    """onnxruntime's bad-feed error as ours (still of onnxruntime's type); others unchanged."""
    if isinstance(exc, HailoOrtError):
        return exc
    if isinstance(exc, InvalidArgument):
        return InvalidFeedError(str(exc))
    if "missing from input feed" in str(exc):
        return MissingInputError(str(exc))
    return exc


def _ort_prefixed(message: str) -> str:
    return f"[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : {message}"


# ---- metadata objects (plan mode; pass-through sessions return onnxruntime's own) ----------
# A plan session describes its inputs, outputs and metadata with onnxruntime's own NodeArg and
# ModelMetadata objects, taken from a node-less onnxruntime session over the model's interface
# (_ort_interface). Only if onnxruntime cannot build that does it use the look-alikes below.


@dataclass(frozen=True)
class NodeArg:
    """A graph input or output as onnxruntime's ``NodeArg`` describes it (a look-alike used only
    when onnxruntime cannot describe the model's interface itself)."""

    name: str
    type: str
    shape: list[Any]

    def __str__(self) -> str:
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape!r})"


@dataclass(frozen=True)
class ModelMetadata:
    """The model metadata as onnxruntime's ``ModelMetadata`` gives it."""

    producer_name: str
    graph_name: str
    domain: str
    description: str
    graph_description: str
    version: int
    custom_metadata_map: dict[str, str] = field(default_factory=dict)


def _node_arg(vi: onnx.ValueInfoProto) -> NodeArg:
    t = vi.type.tensor_type
    dims: list[Any] = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return NodeArg(vi.name, ort_type_name(t.elem_type), dims)


@dataclass(frozen=True)
class _Interface:
    inputs: list[Any]
    outputs: list[Any]
    overridable: list[Any]
    meta: Any


def _ort_interface(model: onnx.ModelProto) -> _Interface | None:
    """onnxruntime's NodeArg / ModelMetadata objects for ``model``'s inputs, outputs and metadata.

    Built from a model with the same interface and no nodes (each output is also declared as
    an input, so it needs no producer); None if onnxruntime refuses it.
    """
    g = model.graph
    overridable = [i for i in g.initializer if any(vi.name == i.name for vi in g.input)]
    if any(i.data_location == onnx.TensorProto.EXTERNAL for i in overridable):
        return None
    shell = onnx.ModelProto()
    for name in ("ir_version", "producer_name", "producer_version", "domain", "doc_string"):
        setattr(shell, name, getattr(model, name))
    if model.HasField("model_version"):
        shell.model_version = model.model_version
    shell.opset_import.extend(model.opset_import)
    shell.metadata_props.extend(model.metadata_props)
    sg = shell.graph
    sg.name, sg.doc_string = g.name, g.doc_string
    sg.input.extend(g.input)
    inputs = {vi.name for vi in g.input}
    sg.input.extend(vi for vi in g.output if vi.name not in inputs)
    sg.output.extend(g.output)
    sg.initializer.extend(overridable)
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        sess = onnxruntime.InferenceSession(
            shell.SerializeToString(), options, providers=[CPU_PROVIDER]
        )
    except Exception as exc:  # onnxruntime raises its own types; the look-alikes will do
        _log.debug("cannot describe the model interface through onnxruntime: %s", exc)
        return None
    real_inputs = [a for a in sess.get_inputs() if a.name in inputs]
    return _Interface(
        real_inputs, sess.get_outputs(), sess.get_overridable_initializers(), sess.get_modelmeta()
    )


def _np_dtype(elem_type: int) -> np.dtype:
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))


# ---- model loading ----------------------------------------------------------------------


def _load(source: ModelSource) -> tuple[Any, onnx.ModelProto, Path | None]:
    """(what onnxruntime takes, the ModelProto without external data, the path if any)."""
    from ..compile import CompileResult

    if isinstance(source, CompileResult):  # what hailo_ort.compile returned
        source = source.path if source.path is not None else source.model
    if isinstance(source, onnx.ModelProto):
        return source.SerializeToString(), source, None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        try:
            return data, onnx.load_model_from_string(data), None
        except Exception as exc:
            error = _model_error(InvalidProtobuf(f"the model bytes are not an ONNX model: {exc}"))
            raise error from exc
    if isinstance(source, str) and source.startswith("example:") and not Path(source).is_file():
        from ..graph.loader import load_model

        example = load_model(source)  # a built-in example (hailo_ort.zoo)
        return example.SerializeToString(), example, None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            raise _model_error(InvalidProtobuf(f"model {path} is a folder, not an ONNX file"))
        if not path.is_file():  # onnxruntime raises NoSuchFile: the error is one too
            raise _model_error(NoSuchFile(f"model file not found: {path}"))
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:
            error = _model_error(InvalidProtobuf(f"{path} is not an ONNX model: {exc}"))
            raise error from exc
        return str(path), model, path
    raise ModelError(
        f"expected a model path, bytes, onnx.ModelProto, 'example:NAME' or a CompileResult, got "
        f"{type(source).__name__}"
    )


def _fork_flavour(model: onnx.ModelProto) -> bool:
    """Whether Hailo's fork can run the model: IR ≤ 8 and HailoOp nodes without overloads."""
    return model.ir_version <= FORK_MAX_IR_VERSION and all(
        not n.overload for n in model.graph.node if is_hailo_op(n)
    )


_ORT_STATE = "onnxruntime.capi.onnxruntime_pybind11_state"
_MODEL_ERRORS: dict[type, type] = {}


def _model_error(exc: Exception) -> Exception:
    """onnxruntime's load error as a ModelError that is still of onnxruntime's type."""
    base = type(exc)
    cls = _MODEL_ERRORS.get(base)
    if cls is None:
        cls = type(base.__name__, (ModelError, base), {"__module__": __name__})
        _MODEL_ERRORS[base] = cls
    return cls(str(exc))


class _WholeModelStep:
    """A session without a plan as one pipeline stage (pass-through streaming)."""

    name = "onnxruntime"

    def __init__(self, session: onnxruntime.InferenceSession, outputs: Sequence[str] | None):
        self.session = session
        self.outputs = list(outputs) if outputs else [o.name for o in session.get_outputs()]

    def run(self, values: dict[str, Any], run_options: Any = None) -> None:
        try:
            result = self.session.run(self.outputs, values, run_options)
        except (InvalidArgument, ValueError) as exc:
            raise _feed_error(exc) from None
        values.clear()
        values.update(zip(self.outputs, result))


class InferenceSession:
    """Drop-in for ``onnxruntime.InferenceSession`` that runs HailoOp nodes on a Hailo device.

    ``providers`` / ``provider_options`` take ``"HailoExecutionProvider"`` with its options the
    ONNX Runtime way; ``providers=None`` means the Hailo provider with default options, then CPU.
    """

    def __init__(
        self,
        path_or_bytes: ModelSource,
        sess_options: onnxruntime.SessionOptions | None = None,
        providers: Sequence[ProviderSpec] | None = None,
        provider_options: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        self._source = path_or_bytes
        self._sess_options = sess_options
        self._kwargs = kwargs
        self._ort: onnxruntime.InferenceSession | None = None
        self._plan: Plan | None = None
        self._device: Device | None = None
        self._timer: StageTimer | None = None
        self._pipeline: Pipeline | None = None
        self._pipeline_lock = threading.Lock()
        self._streams: weakref.WeakSet[Pipeline] = weakref.WeakSet()
        self._ort_arg, self._model, self._path = _load(path_or_bytes)
        self._batch_inputs = _dynamic_batch_inputs(self._model)
        self._build(split_providers(providers, provider_options))

    # ---- construction ---------------------------------------------------------------------
    def _ort_session(self, model: Any, choice: ProviderChoice) -> onnxruntime.InferenceSession:
        try:
            return onnxruntime.InferenceSession(
                model,
                sess_options=self._sess_options,
                providers=choice.ort_providers,
                provider_options=choice.ort_provider_options,
                **self._kwargs,
            )
        except Exception as exc:
            if type(exc).__module__ != _ORT_STATE or isinstance(exc, HailoOrtError):
                raise
            raise _model_error(exc) from exc

    def _build(self, choice: ProviderChoice) -> None:
        self._ort, self._plan, self._device = None, None, None
        self._choice = choice
        self._hailo = choice.hailo
        if not has_hailo_ops(self._model):
            self._ort = self._ort_session(self._ort_arg, choice)
            return
        options = choice.hailo
        if (
            options is not None
            and options.device != "emulator"
            and fork_provider_available()
            and _fork_flavour(self._model)
        ):
            fork = ProviderChoice(
                options,
                [HAILO_PROVIDER, *choice.ort_providers],
                [{}, *choice.ort_provider_options],
            )
            self._ort = self._ort_session(self._ort_arg, fork)
            return
        full = self._full_model()
        name_hailo_nodes(full)
        check_model_graph(full)
        sites = read_hailo_ops(full)
        if options is None:
            self._run_on_cpu(sites, "HailoExecutionProvider is not in the providers", choice)
            return
        try:
            device = open_device(options)
        except HailoOrtError as exc:
            if options.fallback == "cpu" and all(s.has_fallback for s in sites):
                self._run_on_cpu(
                    sites, f"the {options.device} device is unavailable: {exc}", choice
                )
                return
            raise
        if device is None:
            hint = (
                " (its HailoOps were compiled for emulation: device='emulator' runs them)"
                if all(site.compiled.hef is None for site in sites)
                else ""
            )
            self._run_on_cpu(sites, f"no Hailo device found{hint}", choice)
            return
        try:
            loaded = load_partitions(sites, device, options)
            if all(part is None for part in loaded.values()):
                device.close()
                self._run_on_cpu(sites, f"no partition loads on the {device.kind} device", choice)
                return
            self._plan = Plan(full, sites, loaded, options, self._plan_session(choice))
            self._plan.timer = self._timer
        except BaseException:
            device.close()
            raise
        self._device = device
        self._setup_plan_metadata(full)

    def _full_model(self) -> onnx.ModelProto:
        """The model with its external data (a copy the plan may modify)."""
        if self._path is not None:
            try:
                return onnx.load(str(self._path))
            except Exception as exc:
                raise ModelError(f"{self._path}: cannot load external data: {exc}") from exc
        copy = onnx.ModelProto()
        copy.CopyFrom(self._model)
        return copy

    def _plan_session(self, choice: ProviderChoice) -> Callable[[onnx.ModelProto], Any]:
        def make(sub: onnx.ModelProto) -> onnxruntime.InferenceSession:
            return self._ort_session(sub.SerializeToString(), choice)

        return make

    def _run_on_cpu(self, sites: Sequence[Any], reason: str, choice: ProviderChoice) -> None:
        options = choice.hailo or HailoOptions()
        missing = [s for s in sites if not s.has_fallback]
        if missing:
            names = ", ".join(s.name for s in missing)
            if all(s.compiled.hef is None for s in missing):  # emulated, fallback stripped
                raise DeviceError(
                    f"this model needs the emulator ({reason}): HailoOp node(s) {names} were "
                    "compiled for emulation and carry no float fallback to run on the CPU; "
                    "open it with device='emulator'"
                )
            raise DeviceError(
                f"this model needs a Hailo device ({reason}): HailoOp node(s) "
                f"{names} carry no float fallback to run on the CPU "
                "(a DFC or Hailo-fork model); run it where HailoRT and a Hailo device are present"
            )
        if options.fallback == "error" and choice.hailo is not None:
            raise DeviceError(f"{reason} and fallback=error: not running the model on the CPU")
        log_once(logging.WARNING, f"hailo_ort: running the HailoOp nodes on the CPU: {reason}")
        self._ort = self._ort_session(self._ort_arg, choice)

    def _setup_plan_metadata(self, model: onnx.ModelProto) -> None:
        g = model.graph
        init_names = {i.name for i in g.initializer}
        self._inputs = [_node_arg(vi) for vi in g.input if vi.name not in init_names]
        self._overridable = [_node_arg(vi) for vi in g.input if vi.name in init_names]
        self._outputs = [_node_arg(vi) for vi in g.output]
        self._output_names = [o.name for o in self._outputs]
        self._input_types = {
            vi.name: (_np_dtype(vi.type.tensor_type.elem_type), self._dims(vi)) for vi in g.input
        }
        self._required = [vi.name for vi in g.input if vi.name not in init_names]
        interface = _ort_interface(model)
        if interface is not None:  # onnxruntime's own objects, as a pass-through session gives
            self._inputs, self._outputs = interface.inputs, interface.outputs
            self._overridable, self._meta = interface.overridable, interface.meta
            return
        self._meta = ModelMetadata(
            producer_name=model.producer_name,
            graph_name=g.name,
            domain=model.domain,
            description=model.doc_string,
            graph_description=g.doc_string,
            # onnxruntime reports an unset model_version as INT64_MAX
            version=int(model.model_version) if model.HasField("model_version") else 2**63 - 1,
            custom_metadata_map={p.key: p.value for p in model.metadata_props},
        )

    @staticmethod
    def _dims(vi: onnx.ValueInfoProto) -> list[int | None]:
        return [
            int(d.dim_value) if d.HasField("dim_value") else None
            for d in vi.type.tensor_type.shape.dim
        ]

    # ---- feeds (plan mode) --------------------------------------------------------------
    def _check(
        self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any]
    ) -> tuple[list[str], dict[str, Any]]:
        names = list(output_names) if output_names else list(self._output_names)
        for name in names:
            if name not in self._output_names:
                raise InvalidFeedError(_ort_prefixed(f"Invalid output name:{name}"))
        missing = [n for n in self._required if n not in input_feed]
        if missing:
            raise MissingInputError(
                f"Required inputs ({missing}) are missing from input feed ({list(input_feed)})."
            )
        feeds: dict[str, Any] = {}
        for name, value in input_feed.items():
            if name not in self._input_types:
                raise InvalidFeedError(_ort_prefixed(f"Invalid input name: {name}"))
            dtype, dims = self._input_types[name]
            if isinstance(value, onnxruntime.OrtValue):
                value = value.numpy()
            elif not isinstance(value, np.ndarray):
                value = np.asarray(value, dtype=dtype)
            if value.dtype != dtype:
                raise InvalidFeedError(
                    _ort_prefixed(
                        f"Unexpected input data type. Actual: ({_ort_name(value.dtype)}) , "
                        f"expected: ({_ort_name(dtype)})"
                    )
                )
            if value.ndim != len(dims):
                raise InvalidFeedError(
                    _ort_prefixed(
                        f"Invalid rank for input: {name} Got: {value.ndim} Expected: {len(dims)} "
                        "Please fix either the inputs/outputs or the model."
                    )
                )
            bad = [
                f" index: {i} Got: {got} Expected: {want}"
                for i, (got, want) in enumerate(zip(value.shape, dims))
                if want is not None and got != want
            ]
            if bad:
                raise InvalidFeedError(
                    _ort_prefixed(
                        f"Got invalid dimensions for input: {name} for the following indices\n"
                        + "\n".join(bad)
                        + "\n Please fix either the inputs/outputs or the model."
                    )
                )
            feeds[name] = value
        return names, feeds

    # ---- running ----------------------------------------------------------------------------
    def run(
        self,
        output_names: Sequence[str] | None,
        input_feed: Mapping[str, Any],
        run_options: onnxruntime.RunOptions | None = None,
    ) -> list[Any]:
        """Compute the outputs ``output_names`` (all when None) for ``input_feed``."""
        frames = self._frames_to_split(input_feed)
        if frames is not None:
            pipeline = self._pipeline
            if self._plan is not None and not (pipeline and pipeline.on_worker_thread()):
                return self._run_frames_pipelined(frames, output_names, input_feed, run_options)
            # no plan, or called from a run_async callback (it must not wait on its own thread)
            return self._run_per_frame(frames, output_names, input_feed, run_options)
        plan = self._plan
        if plan is None:
            timer = self._timer
            start = time.perf_counter() if timer is not None else 0.0
            try:
                result = self._ort.run(output_names, input_feed, run_options)  # type: ignore[union-attr]
            except (InvalidArgument, ValueError) as exc:
                raise _feed_error(exc) from None
            if timer is not None:
                timer.add("onnxruntime", time.perf_counter() - start)
            return result
        names, feeds = self._check(output_names, input_feed)
        return plan.run(names, feeds, run_options)

    # ---- models compiled per frame from a dynamic batch ------------------------------------
    def _frames_to_split(self, input_feed: Mapping[str, Any]) -> int | None:
        """N when the model was compiled per frame from a dynamic batch (see
        ``hailo_ort.compile``) and ``input_feed`` holds N > 1 frames of every batched input."""
        if not self._batch_inputs:
            return None
        frames = set()
        for name in self._batch_inputs:
            if name not in input_feed:
                return None  # reported by the feed check
            value = input_feed[name]
            shape = value.shape() if isinstance(value, onnxruntime.OrtValue) else np.shape(value)
            if not shape:
                return None
            frames.add(int(shape[0]))
        if len(frames) != 1:
            raise InvalidFeedError(
                _ort_prefixed(
                    f"inputs {sorted(self._batch_inputs)} share a batch dim but were fed "
                    f"{sorted(frames)} frames"
                )
            )
        n = frames.pop()
        return n if n > 1 else None

    def _frame(self, feed: Mapping[str, Any], i: int) -> dict[str, Any]:
        """Frame ``i`` of a dynamic-batch feed (inputs without the batch dim pass as they are)."""
        return {k: (v[i : i + 1] if k in self._batch_inputs else v) for k, v in feed.items()}

    def _run_per_frame(
        self,
        frames: int,
        output_names: Sequence[str] | None,
        input_feed: Mapping[str, Any],
        run_options: onnxruntime.RunOptions | None,
    ) -> list[Any]:
        feed = {
            k: (v.numpy() if isinstance(v, onnxruntime.OrtValue) else np.asarray(v))
            for k, v in input_feed.items()
        }
        per_frame = [
            self.run(output_names, self._frame(feed, i), run_options) for i in range(frames)
        ]
        return [np.concatenate(parts, axis=0) for parts in zip(*per_frame)]

    def _run_frames_pipelined(
        self,
        frames: int,
        output_names: Sequence[str] | None,
        input_feed: Mapping[str, Any],
        run_options: onnxruntime.RunOptions | None,
    ) -> list[Any]:
        """Run ``frames`` frames through the session's pipeline and wait for all of them."""
        pipeline, gather = self._submit_frames(
            frames, output_names, input_feed, run_options, lambda outputs, error: None
        )
        while not gather.done.wait(0.5):
            if not pipeline.alive and not gather.done.is_set():
                raise HailoOrtError("the session's pipeline stopped (session closed)")
        if gather.error is not None:
            raise gather.error
        return gather.outputs  # type: ignore[return-value]

    def _submit_frames(
        self,
        frames: int,
        output_names: Sequence[str] | None,
        input_feed: Mapping[str, Any],
        run_options: onnxruntime.RunOptions | None,
        on_done: Callable[[list[Any] | None, BaseException | None], None],
    ) -> tuple[Pipeline, _FrameGather]:
        """Queue each of the ``frames`` frames of ``input_feed`` as its own pipeline request.

        Bad feeds raise here. When the last frame is done, ``on_done(outputs, error)`` runs
        once (on a pipeline thread): the outputs concatenated in frame order, or the error of
        the first failed frame (never partial outputs).
        """
        plan = self._plan
        assert plan is not None
        names, feeds = self._check(output_names, input_feed)
        pipeline = self._shared_pipeline(plan)
        gather = _FrameGather(frames, on_done)
        for i in range(frames):
            try:
                pipeline.submit(Job(self._frame(feeds, i), names, gather.done_for(i), run_options))
            except Exception as exc:  # the pipeline closed meanwhile: the rest fail
                for j in range(i, frames):
                    gather.done_for(j)(None, exc)
                break
        return pipeline, gather

    def _run_to_callback(
        self,
        output_names: Sequence[str] | None,
        input_feed: Mapping[str, Any],
        callback: Callable[[Any, Any, str], None],
        user_data: Any,
        run_options: onnxruntime.RunOptions | None,
    ) -> None:
        try:
            outputs = self.run(output_names, input_feed, run_options)
        except Exception as exc:
            callback([], user_data, str(exc))
            return
        callback(outputs, user_data, "")

    def run_async(
        self,
        output_names: Sequence[str] | None,
        input_feed: Mapping[str, Any],
        callback: Callable[[Any, Any, str], None],
        user_data: Any,
        run_options: onnxruntime.RunOptions | None = None,
    ) -> None:
        """Run in the background; ``callback(outputs, user_data, error_message)`` when done."""
        frames = self._frames_to_split(input_feed)
        if frames is not None and self._plan is not None:
            done = _ort_callback(callback, user_data)
            self._submit_frames(frames, output_names, input_feed, run_options, done)
            return
        if frames is not None:
            threading.Thread(
                target=self._run_to_callback,
                args=(output_names, input_feed, callback, user_data, run_options),
                daemon=True,
            ).start()
            return
        plan = self._plan
        if plan is None:
            try:
                self._ort.run_async(output_names, input_feed, callback, user_data, run_options)  # type: ignore[union-attr]
            except (InvalidArgument, ValueError) as exc:
                raise _feed_error(exc) from None
            return
        names, feeds = self._check(output_names, input_feed)
        job = Job(feeds, names, _ort_callback(callback, user_data), run_options)
        self._shared_pipeline(plan).submit(job)

    def _shared_pipeline(self, plan: Plan) -> Pipeline:
        """The session's pipeline for run_async (started on first use, stopped by close)."""
        with self._pipeline_lock:
            if self._plan is not plan:
                raise HailoOrtError("the session is closed (set_providers(...) opens it again)")
            if self._pipeline is None:
                self._pipeline = _plan_pipeline(plan)
            return self._pipeline

    def stream(
        self,
        feeds: Iterable[Mapping[str, Any]],
        output_names: Sequence[str] | None = None,
        max_in_flight: int | None = None,
        run_options: onnxruntime.RunOptions | None = None,
        errors: str = "raise",
    ) -> Iterator[list[Any]]:
        """Run every feed of ``feeds``, pipelined, and yield the outputs in the input order.

        Up to ``max_in_flight`` requests are in the pipeline at once (default: enough to keep
        two device batches queued). CPU segments, host transforms and the device work on
        different requests at the same time; queued requests share device batches of up to
        the provider's ``batch_size`` frames. ``errors="raise"`` raises a failed request's
        exception at its place (and ends the stream); ``errors="return"`` yields the
        exception object instead and goes on. Closing the iterator (or leaving its ``for``
        loop) stops and joins its worker threads.
        """
        if errors not in ("raise", "return"):
            raise HailoOrtError(f"errors={errors!r}: expected 'raise' or 'return'")
        plan = self._plan
        if plan is None and (self._ort is None or self._ort is _CLOSED):
            raise HailoOrtError("the session is closed (set_providers(...) opens it again)")
        batch = plan.options.batch_size if plan is not None else 1
        stages = len(plan.steps) if plan is not None else 1
        depth = int(max_in_flight) if max_in_flight is not None else 2 * batch + stages + 1
        if depth < 1:
            raise HailoOrtError(f"max_in_flight must be >= 1, got {max_in_flight}")
        return self._stream(plan, feeds, output_names, depth, run_options, errors == "raise")

    def _stream(
        self,
        plan: Plan | None,
        feeds: Iterable[Mapping[str, Any]],
        output_names: Sequence[str] | None,
        depth: int,
        run_options: Any,
        raise_errors: bool,
    ) -> Iterator[list[Any]]:
        if plan is not None:
            pipeline = _plan_pipeline(plan)
        else:
            whole = _WholeModelStep(self._ort, output_names)  # type: ignore[arg-type]
            output_names = whole.outputs
            pipeline = Pipeline([whole], cpu_workers=2)
        with self._pipeline_lock:
            self._streams.add(pipeline)
        ready: dict[int, tuple[list[Any] | None, BaseException | None]] = {}
        cond = threading.Condition()

        def on_done_for(seq: int) -> Callable[[list[Any] | None, BaseException | None], None]:
            def done(outputs: list[Any] | None, error: BaseException | None) -> None:
                with cond:
                    ready[seq] = (outputs, error)
                    cond.notify_all()

            return done

        source = iter(feeds)
        submitted = delivered = 0
        exhausted = False
        try:
            while True:
                while not exhausted and submitted - delivered < depth:
                    try:
                        feed = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    pipeline.submit(
                        self._stream_job(
                            plan, feed, output_names, run_options, on_done_for(submitted)
                        )
                    )
                    submitted += 1
                if delivered == submitted:
                    return
                with cond:
                    while delivered not in ready:
                        if not cond.wait(0.5) and not pipeline.alive:
                            raise HailoOrtError("the session's pipeline stopped (session closed)")
                    outputs, error = ready.pop(delivered)
                delivered += 1
                if error is not None:
                    if raise_errors:
                        raise error
                    yield error  # type: ignore[misc]
                else:
                    yield outputs  # type: ignore[misc]
        finally:
            pipeline.close()
            with self._pipeline_lock:
                self._streams.discard(pipeline)

    def _stream_job(
        self,
        plan: Plan | None,
        feed: Mapping[str, Any],
        output_names: Sequence[str] | None,
        run_options: Any,
        done: Callable[[list[Any] | None, BaseException | None], None],
    ) -> Job:
        if plan is None:
            return Job(dict(feed), output_names or [], done, run_options)
        try:
            names, feeds = self._check(output_names, feed)
        except HailoOrtError as exc:
            return Job({}, [], done, run_options, error=exc)
        return Job(feeds, names, done, run_options)

    # ---- per-stage timing -------------------------------------------------------------------
    def enable_stage_timing(self, enabled: bool = True) -> None:
        """Record the time of every plan stage per request (see :meth:`stage_times`).

        Off by default; when off it costs one attribute test per stage. A session without a
        plan (no device part) has one stage, ``onnxruntime``, timed around ``run``.
        """
        self._timer = StageTimer() if enabled else None
        if self._plan is not None:
            self._plan.timer = self._timer

    def stage_times(self, reset: bool = False) -> dict[str, StageStats]:
        """Per-stage statistics recorded since timing was enabled (or the last reset)."""
        timer = self._timer
        if timer is None:
            return {}
        stats = timer.stats()
        if reset:
            timer.reset()
        return stats

    def run_with_ort_values(
        self,
        output_names: Sequence[str] | None,
        input_dict_ort_values: Mapping[str, onnxruntime.OrtValue],
        run_options: onnxruntime.RunOptions | None = None,
    ) -> list[onnxruntime.OrtValue]:
        """Like :meth:`run` with OrtValue inputs and outputs."""
        if self._plan is None:
            return self._ort.run_with_ort_values(output_names, input_dict_ort_values, run_options)  # type: ignore[union-attr]
        outs = self.run(output_names, dict(input_dict_ort_values), run_options)
        return [onnxruntime.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(o)) for o in outs]

    def io_binding(self) -> Any:
        """An IOBinding for :meth:`run_with_iobinding`."""
        if self._plan is None:
            return self._ort.io_binding()  # type: ignore[union-attr]
        return PlanIOBinding(self)

    def run_with_iobinding(
        self, iobinding: Any, run_options: onnxruntime.RunOptions | None = None
    ) -> None:
        """Run with the inputs and outputs bound in ``iobinding``."""
        if self._plan is None:
            self._ort.run_with_iobinding(iobinding, run_options)  # type: ignore[union-attr]
            return
        if not isinstance(iobinding, PlanIOBinding) or iobinding._session is not self:
            raise InvalidFeedError(_ort_prefixed("the IOBinding belongs to another session"))
        iobinding._run(run_options)

    # ---- introspection --------------------------------------------------------------------
    def get_inputs(self) -> list[Any]:
        """The model inputs as onnxruntime ``NodeArg`` objects (name, type, shape)."""
        return self._ort.get_inputs() if self._plan is None else list(self._inputs)  # type: ignore[union-attr]

    def get_outputs(self) -> list[Any]:
        """The model outputs as onnxruntime ``NodeArg`` objects (name, type, shape)."""
        return self._ort.get_outputs() if self._plan is None else list(self._outputs)  # type: ignore[union-attr]

    def get_overridable_initializers(self) -> list[Any]:
        """Initializers a feed may override (graph inputs with a default), as ``NodeArg``."""
        if self._plan is None:
            return self._ort.get_overridable_initializers()  # type: ignore[union-attr]
        return list(self._overridable)

    def get_modelmeta(self) -> Any:
        """The model's metadata as onnxruntime's ``ModelMetadata``."""
        return self._ort.get_modelmeta() if self._plan is None else self._meta  # type: ignore[union-attr]

    def get_providers(self) -> list[str]:
        """The providers that actually run the model (Hailo only when a device runs a part)."""
        if self._plan is None:
            return self._ort.get_providers()  # type: ignore[union-attr]
        cpu = self._plan.cpu_sessions
        rest = cpu[0].get_providers() if cpu else list(self._choice.ort_providers)
        return [HAILO_PROVIDER, *(p for p in rest if p != HAILO_PROVIDER)]

    def get_provider_options(self) -> dict[str, dict[str, str]]:
        """Options per provider; the Hailo entry shows the options in effect."""
        if self._plan is None:
            return self._ort.get_provider_options()  # type: ignore[union-attr]
        cpu = self._plan.cpu_sessions
        rest = cpu[0].get_provider_options() if cpu else {CPU_PROVIDER: {}}
        return {HAILO_PROVIDER: (self._hailo or HailoOptions()).to_strings(), **rest}

    def get_session_options(self) -> onnxruntime.SessionOptions:
        """The ``SessionOptions`` the session was created with."""
        if self._plan is None:
            return self._ort.get_session_options()  # type: ignore[union-attr]
        return self._sess_options or onnxruntime.SessionOptions()

    def set_providers(
        self,
        providers: Sequence[ProviderSpec] | None = None,
        provider_options: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Rebuild the session with other providers (as onnxruntime's ``set_providers``)."""
        choice = split_providers(providers, provider_options)
        self.close()
        self._build(choice)

    def end_profiling(self) -> str:
        """Stop onnxruntime profiling and return the profile file (first CPU segment's in a plan)."""
        if self._plan is None:
            return self._ort.end_profiling()  # type: ignore[union-attr]
        files = [s.end_profiling() for s in self._plan.cpu_sessions]
        return next((f for f in files if f), "")

    def disable_fallback(self) -> None:
        """As onnxruntime's (provider fallback); no effect in plan mode."""
        if self._plan is None:
            self._ort.disable_fallback()  # type: ignore[union-attr]

    def enable_fallback(self) -> None:
        """As onnxruntime's (provider fallback); no effect in plan mode."""
        if self._plan is None:
            self._ort.enable_fallback()  # type: ignore[union-attr]

    @property
    def device_nodes(self) -> list[str]:
        """Names of the HailoOp nodes that run on a device (empty when all runs on the CPU)."""
        return self._plan.on_device if self._plan is not None else []

    def close(self) -> None:
        """Release the device (the session must be rebuilt with set_providers to run again).

        Stops the run_async pipeline and any open stream first (joining their threads).
        """
        lock = self.__dict__.get("_pipeline_lock")
        if lock is not None:
            with lock:
                pipelines = [self._pipeline, *self._streams]
                self._pipeline = None
            for pipeline in pipelines:
                if pipeline is not None:
                    pipeline.close()
        if self._plan is not None:
            self._plan.close()
            self._plan = None
        if self._device is not None:
            self._device.close()
            self._device = None
        self._ort = _CLOSED  # type: ignore[assignment]

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __getattr__(self, name: str) -> Any:
        # Anything else onnxruntime's session offers, in pass-through mode.
        ort = self.__dict__.get("_ort")
        if ort is not None and ort is not _CLOSED and not name.startswith("__"):
            return getattr(ort, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _ort_callback(
    callback: Callable[[Any, Any, str], None], user_data: Any
) -> Callable[[list[Any] | None, BaseException | None], None]:
    """A pipeline ``done(outputs, error)`` that calls an onnxruntime-style run_async callback."""

    def done(outputs: list[Any] | None, error: BaseException | None) -> None:
        if error is not None:
            callback([], user_data, str(error))
        else:
            callback(outputs, user_data, "")

    return done


def _plan_pipeline(plan: Plan) -> Pipeline:
    """A pipeline over the plan's steps, batching up to the provider's ``batch_size``."""
    return Pipeline(plan.steps, plan.constants, batch_size=plan.options.batch_size)


class _FrameGather:
    """Collects the per-frame results of one N-frame request (see ``_submit_frames``)."""

    def __init__(
        self, frames: int, on_done: Callable[[list[Any] | None, BaseException | None], None]
    ) -> None:
        self._results: list[list[Any] | None] = [None] * frames
        self._errors: list[BaseException | None] = [None] * frames
        self._left = frames
        self._lock = threading.Lock()
        self._on_done = on_done
        self.done = threading.Event()
        self.outputs: list[Any] | None = None
        self.error: BaseException | None = None

    def done_for(self, index: int) -> Callable[[list[Any] | None, BaseException | None], None]:
        def done(outputs: list[Any] | None, error: BaseException | None) -> None:
            with self._lock:
                self._results[index], self._errors[index] = outputs, error
                self._left -= 1
                if self._left:
                    return
            self._finish()

        return done

    def _finish(self) -> None:
        self.error = next((e for e in self._errors if e is not None), None)
        if self.error is None:
            try:
                parts = zip(*self._results)  # type: ignore[misc]
                self.outputs = [np.concatenate(p, axis=0) for p in parts]
            except Exception as exc:  # outputs that do not stack along axis 0
                self.error = exc
        self._results = []
        self.done.set()
        self._on_done(self.outputs, self.error)


class _ClosedSession:
    """Stands in for the onnxruntime session after close(): every call says so."""

    def __getattr__(self, name: str) -> Any:
        raise HailoOrtError("the session is closed (set_providers(...) opens it again)")


_CLOSED = _ClosedSession()


def _ort_name(dtype: np.dtype) -> str:
    try:
        return ort_type_name(onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
    except Exception:
        return f"tensor({dtype})"


class PlanIOBinding:
    """onnxruntime's IOBinding, for a session that runs as a plan (CPU memory only)."""

    def __init__(self, session: InferenceSession) -> None:
        self._session = session
        self._inputs: dict[str, Any] = {}
        self._outputs: dict[str, np.ndarray | onnxruntime.OrtValue | None] = {}
        self._results: list[onnxruntime.OrtValue] = []

    def bind_cpu_input(self, name: str, arr_on_cpu: np.ndarray) -> None:
        """Bind a numpy array as the input ``name``."""
        self._inputs[name] = arr_on_cpu

    def bind_ortvalue_input(self, name: str, ortvalue: onnxruntime.OrtValue) -> None:
        """Bind an ``OrtValue`` (CPU memory) as the input ``name``."""
        self._inputs[name] = ortvalue

    def bind_input(
        self,
        name: str,
        device_type: str,
        device_id: int,
        element_type: Any,
        shape: Sequence[int],
        buffer_ptr: int,
    ) -> None:
        """Bind CPU memory at ``buffer_ptr`` (``element_type``, ``shape``) as the input ``name``."""
        self._inputs[name] = _view(device_type, element_type, shape, buffer_ptr)

    def bind_output(
        self,
        name: str,
        device_type: str = "cpu",
        device_id: int = 0,
        element_type: Any = None,
        shape: Sequence[int] | None = None,
        buffer_ptr: int | None = None,
    ) -> None:
        """Bind the output ``name``: to a CPU buffer at ``buffer_ptr``, or (no buffer) to memory the run allocates."""
        if buffer_ptr is None:
            self._outputs[name] = None
        else:
            if element_type is None or shape is None:
                raise InvalidFeedError(
                    _ort_prefixed("bind_output with a buffer needs element_type and shape")
                )
            self._outputs[name] = _view(device_type, element_type, shape, buffer_ptr)

    def bind_ortvalue_output(self, name: str, ortvalue: onnxruntime.OrtValue) -> None:
        """Bind an ``OrtValue`` (CPU memory) to receive the output ``name``."""
        self._outputs[name] = ortvalue

    def clear_binding_inputs(self) -> None:
        """Forget every bound input."""
        self._inputs.clear()

    def clear_binding_outputs(self) -> None:
        """Forget every bound output."""
        self._outputs.clear()

    def synchronize_inputs(self) -> None:
        """CPU memory: nothing to synchronise."""

    def synchronize_outputs(self) -> None:
        """CPU memory: nothing to synchronise."""

    def get_outputs(self) -> list[onnxruntime.OrtValue]:
        """The outputs of the last run as ``OrtValue`` objects."""
        return list(self._results)

    def copy_outputs_to_cpu(self) -> list[np.ndarray]:
        """The outputs of the last run as numpy arrays."""
        return [v.numpy() for v in self._results]

    def _run(self, run_options: Any) -> None:
        names = list(self._outputs) or None
        outs = self._session.run(names, self._inputs, run_options)
        results = []
        for name, value in zip(names or self._session._output_names, outs):
            target = self._outputs.get(name)
            value = np.ascontiguousarray(value)
            if target is None:
                results.append(onnxruntime.OrtValue.ortvalue_from_numpy(value))
            elif isinstance(target, np.ndarray):
                if target.shape != value.shape or target.dtype != value.dtype:
                    raise InvalidFeedError(
                        _ort_prefixed(
                            f"output {name} is {value.dtype}{list(value.shape)}, the bound buffer "
                            f"is {target.dtype}{list(target.shape)}"
                        )
                    )
                np.copyto(target, value)
                results.append(onnxruntime.OrtValue.ortvalue_from_numpy(target))
            else:
                target.update_inplace(value)
                results.append(target)
        self._results = results


def _view(device_type: str, element_type: Any, shape: Sequence[int], ptr: int) -> np.ndarray:
    """A numpy array over CPU memory at ``ptr`` (no copy)."""
    if str(device_type).lower() != "cpu":
        raise InvalidFeedError(
            _ort_prefixed(f"device_type {device_type!r}: only cpu memory is bound")
        )
    dtype = np.dtype(element_type)
    count = int(np.prod(shape)) if len(shape) else 1
    raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(int(ptr))
    return np.frombuffer(raw, dtype=dtype, count=count).reshape(tuple(shape))


# ---- hailo_ort.session ----------------------------------------------------------------------


def _dfc_available() -> bool:
    """Whether a Hailo DFC is at hand (``hailo_ort.compile.dfc.find_dfc_python``)."""
    from ..compile.dfc import find_dfc_python

    try:
        return find_dfc_python() is not None
    except HailoOrtError:
        return False


def _device_arch(options: HailoOptions) -> str | None:
    """The DFC arch of the HailoRT device present, if any."""
    from ..archs import get_arch

    try:
        device = open_device(replace(options, device="auto"))
    except HailoOrtError:
        return None
    if device is None:
        return None
    try:
        return get_arch(device.arch.lower()).name
    except HailoOrtError:
        return None
    finally:
        device.close()


def _emulated_only(model: onnx.ModelProto) -> bool:
    """True when ``model`` has HailoOp nodes and none of them carries a HEF (emulate backend)."""
    if not has_hailo_ops(model):
        return False
    try:
        sites = read_hailo_ops(model)
    except HailoOrtError:
        return False  # InferenceSession reports the malformed node
    return bool(sites) and all(site.compiled.hef is None for site in sites)


def _dynamic_batch_inputs(model: onnx.ModelProto) -> set[str]:
    """The inputs whose frames the session runs one at a time: those recorded under
    ``hailo_ort.compile.DYNAMIC_BATCH_KEY`` for a model compiled per frame from a dynamic batch."""
    import json

    from ..compile import DYNAMIC_BATCH_KEY

    for prop in model.metadata_props:
        if prop.key == DYNAMIC_BATCH_KEY:
            try:
                return set(json.loads(prop.value).get("inputs", {}))
            except (ValueError, AttributeError):
                return set()
    return set()


def session(
    model: ModelSource,
    *,
    compile: str | bool | None = None,
    arch: str | None = None,
    calibration: Any = None,
    input_shapes: Any = None,
    output: str | os.PathLike[str] | None = None,
    sess_options: onnxruntime.SessionOptions | None = None,
    providers: Sequence[ProviderSpec] | None = None,
    **options: Any,
) -> InferenceSession:
    """Open ``model`` on the Hailo device (or the CPU), compiling a plain model first if possible.

    ``compile``: None (compile with the DFC when it is installed, else run on the CPU and log
    why), ``"dfc"`` (the DFC or an error), ``"emulate"`` (the emulate backend; runs on the
    emulator unless ``device`` is given) or False (never compile). ``arch`` is the target arch
    (default: that of the device present); ``calibration`` and ``input_shapes`` (``{name:
    [1, 3, H, W]}`` for dynamic inputs) go to ``hailo_ort.compile``. The compiled model stays in
    memory (its partitions in the compile cache) unless ``output`` names a file to write it
    to; nothing is written next to ``model``. Other keyword arguments are HailoExecutionProvider
    options (``device``, ``fallback``, ``batch_size``...). ``providers`` lists the providers
    after the Hailo one (default CPU). A model whose HailoOps were all compiled for emulation
    (no HEF) runs on the emulator unless ``device`` is given.
    """
    from .providers import parse_hailo_options

    hailo = parse_hailo_options(options)
    source: ModelSource = model
    _, proto, path = _load(model)
    if compile not in (None, False, "dfc", "emulate", "auto", "none"):
        raise CompileError(f"compile={compile!r}: expected None, 'dfc', 'emulate' or False")
    if not has_hailo_ops(proto) and compile not in (False, "none"):
        name = path.name if path else (proto.graph.name or "the model")
        backend = "emulate" if compile == "emulate" else "dfc"
        target = arch
        reason = None
        if backend == "dfc" and not _dfc_available():
            reason = "no Hailo compiler (the DFC) is installed here"
        elif target is None:
            target = _device_arch(hailo) if backend == "dfc" else "hailo8l"
            if target is None:
                reason = "no Hailo device is present to choose the arch (give arch=...)"
        if reason is None:
            import hailo_ort

            try:
                extra: dict[str, Any] = {} if calibration is None else {"calibration": calibration}
                if input_shapes is not None:
                    extra["input_shapes"] = input_shapes
                # compiled in memory (partitions through the cache); written only to output
                given = proto
                if output is not None:
                    extra["output"] = output
                    given = model if path is not None else proto
                result = hailo_ort.compile(given, arch=target, backend=backend, **extra)
                source = result.model
            except HailoOrtError as exc:
                if compile is not None and compile != "auto":
                    if isinstance(exc, CalibrationError) and calibration is None:
                        raise CalibrationError(
                            f"{exc} (hailo_ort.session: pass calibration=..., e.g. an .npy "
                            "file, a folder of images, or 'random' for a smoke test)"
                        ) from exc
                    raise
                reason = f"compilation failed: {exc}"
        elif compile == backend:
            raise CompileError(f"cannot compile {name}: {reason}")
        if reason is not None:
            log_once(
                logging.WARNING,
                f"hailo_ort: running {name} on the CPU: {reason}. Compile it once on an x86-64 "
                f"Linux host with the Hailo DFC: `hailo-ort compile {path or 'model.onnx'} "
                "--arch <arch>`, then open the .hailo.onnx it writes (to preview 8-bit "
                "accuracy here: compile='emulate', calibration=...)",
            )
        elif backend == "emulate" and "device" not in options:
            hailo = replace(hailo, device="emulator")
    elif "device" not in options and _emulated_only(proto):
        # Compiled with the emulate backend: no HEF, so only the emulator can run it.
        hailo = replace(hailo, device="emulator")
    rest = list(providers) if providers is not None else [CPU_PROVIDER]
    provider_list: list[ProviderSpec] = [
        (HAILO_PROVIDER, asdict(hailo)),
        *(p for p in rest if p != HAILO_PROVIDER),
    ]
    return InferenceSession(source, sess_options=sess_options, providers=provider_list)
