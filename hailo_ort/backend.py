"""``import hailo_ort.backend``: the ONNX backend API (see :mod:`hailo_ort.runtime.backend`)."""

from __future__ import annotations

from .runtime.backend import (
    HailoOrtBackend,
    HailoOrtBackendRep,
    is_compatible,
    prepare,
    run,
    run_model,
    run_node,
    supports_device,
)

__all__ = [
    "HailoOrtBackend",
    "HailoOrtBackendRep",
    "is_compatible",
    "prepare",
    "run",
    "run_model",
    "run_node",
    "supports_device",
]
