"""The ONNX backend API (``onnx.backend.base``) over ``hailo_ort.InferenceSession``.

Offers what ``onnxruntime.backend`` offers (``prepare``, ``run_model``, ``run_node``,
``supports_device``, ``is_compatible``), so that ``onnx.backend.test.BackendTest`` runs through
hailo-ort. Sessions get the HailoExecutionProvider (default options) then the CPU: models with
HailoOp nodes run on a device when one is present.
"""

from __future__ import annotations

import os
import unittest
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import onnxruntime
from onnx import helper
from onnx.backend.base import Backend, BackendRep

from .providers import CPU_PROVIDER, HAILO_PROVIDER
from .session import InferenceSession

#: SessionOptions attributes that ``prepare`` accepts as keyword arguments.
SESSION_OPTIONS = frozenset(
    {
        "enable_cpu_mem_arena",
        "enable_mem_pattern",
        "enable_mem_reuse",
        "execution_mode",
        "execution_order",
        "graph_optimization_level",
        "inter_op_num_threads",
        "intra_op_num_threads",
        "log_severity_level",
        "log_verbosity_level",
        "logid",
        "use_deterministic_compute",
        "use_per_session_threads",
    }
)
#: RunOptions attributes that ``run`` accepts as keyword arguments.
RUN_OPTIONS = frozenset(
    {"log_severity_level", "log_verbosity_level", "logid", "only_execute_path_to_fetches"}
)

#: Only opsets ONNX has released (as onnxruntime.backend does); env HAILO_ORT_ALLOW_UNRELEASED_OPSETS=1 lifts it.
RELEASED_OPSETS_ONLY = os.getenv("HAILO_ORT_ALLOW_UNRELEASED_OPSETS", "0") != "1"


def _as_array(value: Any) -> Any:
    return np.asarray(value) if isinstance(value, np.generic) else value


class HailoOrtBackendRep(BackendRep):
    """A prepared model: runs a :class:`hailo_ort.InferenceSession`."""

    def __init__(self, session: InferenceSession) -> None:
        self.session = session

    def run(self, inputs: Any, **kwargs: Any) -> list[Any]:
        """Run on a list of inputs (in model order), a dict by name, or one array."""
        options = onnxruntime.RunOptions()
        for key, value in kwargs.items():
            if key in RUN_OPTIONS:
                setattr(options, key, value)
            elif hasattr(options, key):
                raise RuntimeError(
                    f"RunOptions attribute {key!r} is not accepted here; accepted: {', '.join(sorted(RUN_OPTIONS))}"
                )
        names = [i.name for i in self.session.get_inputs()]
        if isinstance(inputs, Mapping):
            feed = {k: _as_array(v) for k, v in inputs.items()}
        elif isinstance(inputs, (list, tuple)):
            feed = {name: _as_array(v) for name, v in zip(names, inputs)}
        else:
            if len(names) != 1:
                raise RuntimeError(f"the model takes {len(names)} inputs, got one array")
            feed = {names[0]: _as_array(inputs)}
        return list(self.session.run(None, feed, options))


class HailoOrtBackend(Backend):
    """The ONNX backend of hailo-ort."""

    @classmethod
    def supports_device(cls, device: str) -> bool:
        """CPU always; CUDA when onnxruntime has the CUDA provider."""
        name = str(device).upper()
        if name == "CPU":
            return True
        if name in ("CUDA", "GPU"):
            return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        return False

    @classmethod
    def is_compatible(cls, model: Any, device: str = "CPU", **kwargs: Any) -> bool:
        return cls.supports_device(device or "CPU")

    @classmethod
    def _released_opsets_only(cls, model: onnx.ModelProto) -> None:
        if not RELEASED_OPSETS_ONLY:
            return
        for opset in model.opset_import:
            domain = opset.domain or "ai.onnx"
            if (domain, opset.version) not in helper.OP_SET_ID_VERSION_MAP:
                raise unittest.SkipTest(
                    f"opset {domain} {opset.version} is not a released ONNX opset "
                    "(set HAILO_ORT_ALLOW_UNRELEASED_OPSETS=1 to run it)"
                )

    @classmethod
    def prepare(cls, model: Any, device: str | None = None, **kwargs: Any) -> HailoOrtBackendRep:
        """A :class:`HailoOrtBackendRep` for a ModelProto, serialized model, path or session."""
        if isinstance(model, HailoOrtBackendRep):
            return model
        if isinstance(model, InferenceSession):
            return HailoOrtBackendRep(model)
        if isinstance(model, onnx.ModelProto):
            data = model.SerializeToString()
            onnx.checker.check_model(data)
            cls._released_opsets_only(model)
            return cls.prepare(data, device, **kwargs)
        if device is not None and not cls.supports_device(device):
            raise RuntimeError(f"device {device!r} is not supported (CPU only here)")
        options = onnxruntime.SessionOptions()
        options.add_session_config_entry(
            "session.allow_released_opsets_only", "1" if RELEASED_OPSETS_ONLY else "0"
        )
        for key, value in kwargs.items():
            if key in SESSION_OPTIONS:
                setattr(options, key, value)
            elif hasattr(options, key):
                raise RuntimeError(
                    f"SessionOptions attribute {key!r} is not accepted here; accepted: {', '.join(sorted(SESSION_OPTIONS))}"
                )
        session = InferenceSession(
            model, sess_options=options, providers=[HAILO_PROVIDER, CPU_PROVIDER]
        )
        session.disable_fallback()
        return HailoOrtBackendRep(session)

    @classmethod
    def run_model(
        cls, model: Any, inputs: Any, device: str | None = None, **kwargs: Any
    ) -> list[Any]:
        """Prepare ``model`` and run it once on ``inputs``."""
        run_kwargs = {k: v for k, v in kwargs.items() if k in RUN_OPTIONS}
        prep_kwargs = {
            k: v for k, v in kwargs.items() if k not in RUN_OPTIONS or k in SESSION_OPTIONS
        }
        return cls.prepare(model, device, **prep_kwargs).run(inputs, **run_kwargs)

    @classmethod
    def run_node(
        cls,
        node: onnx.NodeProto,
        inputs: Sequence[Any],
        device: str = "CPU",
        outputs_info: Sequence[tuple[Any, Sequence[int]]] | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        """Run one node on ``inputs`` (arrays in the order of ``node.input``)."""
        super().run_node(node, inputs, device=device, outputs_info=outputs_info)
        names = [name for name in node.input if name]
        if len(names) != len(inputs):
            raise ValueError(
                f"node {node.op_type} has {len(names)} inputs, got {len(inputs)} arrays"
            )
        arrays = [np.asarray(v) for v in inputs]
        graph_inputs = [
            helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            for n, a in zip(names, arrays)
        ]
        if outputs_info is not None:
            graph_outputs = [
                helper.make_tensor_value_info(
                    n, helper.np_dtype_to_tensor_dtype(np.dtype(dt)), shape
                )
                for n, (dt, shape) in zip(node.output, outputs_info)
            ]
        else:
            graph_outputs = [onnx.ValueInfoProto(name=n) for n in node.output if n]
        opset = int(kwargs.get("opset_version", 21))
        domain_opsets = [helper.make_opsetid("", opset)]
        if node.domain and node.domain != "ai.onnx":
            domain_opsets.append(helper.make_opsetid(node.domain, 1))
        graph = helper.make_graph([node], f"run_node_{node.op_type}", graph_inputs, graph_outputs)
        model = helper.make_model(graph, opset_imports=domain_opsets)
        model.ir_version = helper.find_min_ir_version_for(domain_opsets, ignore_unknown=True)
        if outputs_info is None:
            inferred = onnx.shape_inference.infer_shapes(model)
            del model.graph.output[:]
            model.graph.output.extend(inferred.graph.output)
        rep = cls.prepare(model.SerializeToString(), device)
        return rep.run(dict(zip(names, arrays)))


is_compatible = HailoOrtBackend.is_compatible
prepare = HailoOrtBackend.prepare
run = HailoOrtBackend.run_model
run_model = HailoOrtBackend.run_model
run_node = HailoOrtBackend.run_node
supports_device = HailoOrtBackend.supports_device
