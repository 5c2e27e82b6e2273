"""Hailo quantization parameters and the reference (numpy) quantize / dequantize rules.

HailoRT's rules: dequantize ``(q - qp_zp) * qp_scale``; quantize
``round_half_even(clip(x, limvals_min, limvals_max) / qp_scale + qp_zp)``, then saturate to
the integer type. Some tensors carry per-feature (last axis on device, channel axis on host)
zero points and scales instead of one pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class QuantInfo:
    """Quantization of one device tensor (HailoRT ``QuantInfo``)."""

    zp: float = 0.0
    scale: float = 1.0
    limvals_min: float = 0.0
    limvals_max: float = 255.0
    zps: list[float] = field(default_factory=list)  # per feature; empty when per-tensor
    scales: list[float] = field(default_factory=list)

    @property
    def per_feature(self) -> bool:
        return bool(self.scales)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "zp": float(self.zp) + 0.0,  # + 0.0 turns -0.0 into 0.0
            "scale": float(self.scale),
            "limvals_min": float(self.limvals_min),
            "limvals_max": float(self.limvals_max),
        }
        if self.per_feature:
            d["zps"] = [float(v) + 0.0 for v in self.zps]
            d["scales"] = [float(v) for v in self.scales]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QuantInfo:
        return cls(
            zp=float(d.get("zp", 0.0)),
            scale=float(d.get("scale", 1.0)),
            limvals_min=float(d.get("limvals_min", 0.0)),
            limvals_max=float(d.get("limvals_max", 255.0)),
            zps=[float(v) for v in d.get("zps", [])],
            scales=[float(v) for v in d.get("scales", [])],
        )


def quant_from_range(lo: float, hi: float, dtype: str = "uint8") -> QuantInfo:
    """Asymmetric uint8/uint16 parameters covering ``[lo, hi]`` (the range always includes 0)."""
    qmax = float(np.iinfo(np.dtype(dtype)).max)
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-12:
        hi = lo + 1e-6
    scale = (hi - lo) / qmax
    zp = float(np.clip(np.round(-lo / scale), 0, qmax)) + 0.0  # 0.0, never -0.0
    return QuantInfo(
        zp=zp,
        scale=scale,
        limvals_min=(0.0 - zp) * scale,
        limvals_max=(qmax - zp) * scale,
    )


def _broadcast(values: list[float], ndim: int, axis: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = len(values)
    return np.asarray(values, dtype=np.float32).reshape(shape)


def quantize(
    x: np.ndarray, q: QuantInfo, dtype: str = "uint8", feature_axis: int = -1
) -> np.ndarray:
    """Reference quantization of float ``x`` (any layout) to ``dtype`` by Hailo's rule."""
    info = np.iinfo(np.dtype(dtype))
    xf = np.asarray(x, dtype=np.float32)
    if q.per_feature:
        scale = _broadcast(q.scales, xf.ndim, feature_axis)
        zp = _broadcast(q.zps or [q.zp] * len(q.scales), xf.ndim, feature_axis)
    else:
        scale, zp = np.float32(q.scale), np.float32(q.zp)
    clipped = np.clip(xf, np.float32(q.limvals_min), np.float32(q.limvals_max))
    y = np.rint(clipped / scale + zp)  # numpy rint rounds half to even
    return np.clip(y, info.min, info.max).astype(dtype)


def dequantize(q_values: np.ndarray, q: QuantInfo, feature_axis: int = -1) -> np.ndarray:
    """Reference dequantization ``(q - zp) * scale`` to float32."""
    v = np.asarray(q_values).astype(np.float32)
    if q.per_feature:
        scale = _broadcast(q.scales, v.ndim, feature_axis)
        zp = _broadcast(q.zps or [q.zp] * len(q.scales), v.ndim, feature_axis)
        return ((v - zp) * scale).astype(np.float32)
    return ((v - np.float32(q.zp)) * np.float32(q.scale)).astype(np.float32)
