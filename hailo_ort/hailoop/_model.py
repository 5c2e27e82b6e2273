"""Loading models given as path / bytes / ModelProto, and small ONNX type helpers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import onnx
from google.protobuf.message import DecodeError
from onnx import helper

from ..errors import ModelError

ModelLike = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, onnx.ModelProto]


def load_model(model: ModelLike, copy: bool = True) -> onnx.ModelProto:
    """An ``onnx.ModelProto`` from a path, serialized bytes or a ModelProto (copied by default).

    Raises ModelError when the file is missing or does not parse as an ONNX model.
    """
    if isinstance(model, onnx.ModelProto):
        if not copy:
            return model
        out = onnx.ModelProto()
        out.CopyFrom(model)
        return out
    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        source = f"{len(data)} bytes"
        try:
            out = onnx.load_from_string(data)
        except (DecodeError, ValueError, RuntimeError) as e:
            raise ModelError(f"not an ONNX model ({source}): {e}") from e
    elif isinstance(model, (str, os.PathLike)):
        path = Path(model)
        source = str(path)
        if not path.is_file():
            raise ModelError(f"ONNX model not found: {path}")
        try:
            out = onnx.load(str(path))
        except (DecodeError, ValueError, RuntimeError, OSError) as e:
            raise ModelError(f"not an ONNX model: {path}: {e}") from e
    else:
        raise ModelError(f"expected a path, bytes or onnx.ModelProto, got {type(model).__name__}")
    if not out.HasField("graph") or (not out.graph.node and not out.graph.output):
        raise ModelError(f"not an ONNX model ({source}): no graph")
    return out


def elem_dtype_name(elem_type: int) -> str:
    """numpy dtype name of an ONNX element type, e.g. 1 → "float32"."""
    try:
        return helper.tensor_dtype_to_np_dtype(elem_type).name
    except (KeyError, ValueError, TypeError) as e:
        raise ModelError(f"unsupported ONNX element type {elem_type}") from e


def elem_type_of(dtype: str) -> int:
    """ONNX element type of a numpy dtype name, e.g. "uint8" → 2."""
    import numpy as np

    try:
        return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"unsupported dtype {dtype!r}") from e


def tensor_shape(vi: onnx.ValueInfoProto) -> list[int] | None:
    """Static dims of a tensor value info; symbolic or unknown dims are -1; None if no shape."""
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [int(d.dim_value) if d.HasField("dim_value") else -1 for d in t.shape.dim]


def tensor_dtype(vi: onnx.ValueInfoProto) -> str | None:
    """numpy dtype name of a tensor value info, or None when untyped."""
    t = vi.type.tensor_type
    return elem_dtype_name(t.elem_type) if t.elem_type else None
