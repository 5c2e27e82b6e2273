"""hailo-ort: run ONNX models on Hailo accelerators through ONNX Runtime, with CPU fallback.

The flow: ``inspect`` (graph analysis and partition) → ``compile`` (DFC or emulation, embedded
as ``ai.hailo::HailoOp`` nodes) → ``session`` / ``InferenceSession`` (run on the device, with
everything else on the CPU).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public names, imported on first use so that ``import hailo_ort`` stays light.
_LAZY: dict[str, tuple[str, str]] = {
    "inspect": ("hailo_ort.partition.inspect", "inspect"),
    "InspectResult": ("hailo_ort.partition.inspect", "InspectResult"),
    "compile": ("hailo_ort.compile", "compile"),
    "session": ("hailo_ort.runtime.session", "session"),
    "InferenceSession": ("hailo_ort.runtime.session", "InferenceSession"),
    "get_available_providers": ("hailo_ort.runtime.providers", "get_available_providers"),
    "hef": ("hailo_ort.hef", None),
    "hailoop": ("hailo_ort.hailoop", None),
    "backend": ("hailo_ort.runtime.backend", None),
    # The rest of onnxruntime's API, so that `import hailo_ort as ort` is a drop-in.
    **{
        name: ("onnxruntime", name)
        for name in (
            "SessionOptions",
            "RunOptions",
            "OrtValue",
            "SparseTensor",
            "IOBinding",
            "GraphOptimizationLevel",
            "ExecutionMode",
            "ExecutionOrder",
            "NodeArg",
            "ModelMetadata",
            "OrtDevice",
            "OrtMemoryInfo",
            "get_device",
            "get_all_providers",
            "get_version_string",
            "set_default_logger_severity",
            "set_default_logger_verbosity",
            "set_seed",
        )
    },
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'hailo_ort' has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value
