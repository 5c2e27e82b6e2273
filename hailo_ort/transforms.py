"""Host-side transforms between the model's tensors and the device's.

Model side: float32 in the host layout (``NCHW`` for 4-D, ``NC`` for 2-D). Device side:
uint8 / uint16 in the device layout (``NHWC``, ``NHCW`` or ``NC``), quantized by Hailo's rule
(:mod:`hailo_ort.quant`). This module is the one entry point the runtime uses; the native core
provides the fast fused path, the numpy code here is the reference it must match.
"""

from __future__ import annotations

import numpy as np

from .quant import QuantInfo, dequantize, quantize

#: Permutation from a 4-D host layout to a 4-D device layout.
_PERMS: dict[tuple[str, str], tuple[int, ...]] = {
    ("NCHW", "NHWC"): (0, 2, 3, 1),
    ("NCHW", "NHCW"): (0, 2, 1, 3),
    ("NCHW", "NCHW"): (0, 1, 2, 3),
    ("NHWC", "NHWC"): (0, 1, 2, 3),
    ("NHWC", "NHCW"): (0, 1, 3, 2),
}


def _perm(host_order: str, device_order: str, ndim: int) -> tuple[int, ...]:
    if ndim != 4 or device_order in ("NC", "NHW", "AUTO") or host_order == device_order:
        return tuple(range(ndim))
    try:
        return _PERMS[(host_order, device_order)]
    except KeyError:
        raise ValueError(f"no transform from host {host_order} to device {device_order}") from None


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


def _feature_axis(device_order: str, ndim: int) -> int:
    """Axis of the features (channels) in the device layout."""
    if ndim == 4 and device_order == "NHCW":
        return 2
    return ndim - 1


def to_device(
    x: np.ndarray,
    quant: QuantInfo,
    device_dtype: str = "uint8",
    host_order: str = "NCHW",
    device_order: str = "NHWC",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Quantize float ``x`` and lay it out as the device expects (reference implementation)."""
    perm = _perm(host_order, device_order, x.ndim)
    moved = np.transpose(np.asarray(x, dtype=np.float32), perm)
    q = quantize(moved, quant, device_dtype, feature_axis=_feature_axis(device_order, x.ndim))
    if out is None:
        return np.ascontiguousarray(q)
    if out.shape != q.shape or out.dtype != q.dtype:
        raise ValueError(f"to_device: out is {out.dtype}{out.shape}, expected {q.dtype}{q.shape}")
    np.copyto(out, q)
    return out


def from_device(
    q: np.ndarray,
    quant: QuantInfo,
    host_order: str = "NCHW",
    device_order: str = "NHWC",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Dequantize device values ``q`` to float32 in the host layout (reference implementation)."""
    x = dequantize(q, quant, feature_axis=_feature_axis(device_order, q.ndim))
    perm = _inverse(_perm(host_order, device_order, q.ndim))
    y = np.ascontiguousarray(np.transpose(x, perm))
    if out is None:
        return y
    if out.shape != y.shape or out.dtype != y.dtype:
        raise ValueError(f"from_device: out is {out.dtype}{out.shape}, expected {y.dtype}{y.shape}")
    np.copyto(out, y)
    return out
