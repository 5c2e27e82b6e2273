"""Host-side transforms between the model's tensors and the device's.

Model side: float32 in the host layout (``NCHW`` for 4-D, ``NC`` for 2-D). Device side:
uint8 / uint16 in the device layout (``NHWC``, ``NHCW`` or ``NC``), quantized by Hailo's rule
(:mod:`hailo_ort.quant`). This module is the one entry point the runtime uses; the native core
(``hailo_ort._native``) provides the fast fused path (one pass over memory, GIL released, big
tensors split across threads), the numpy code here is the reference it must match bit for bit.
The fast path is taken whenever the native module is built and the arguments fit (uint8/uint16
device side, a supported layout pair, no NaN in the quantization parameters); otherwise the
reference runs. NaN inputs quantize to 0 on both paths (numpy's float->int cast gives 0 on
x86-64 and arm64; the native kernel defines it); +-inf are clipped to the limvals like any value.
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Protocol

import numpy as np

from .quant import QuantInfo, dequantize, quantize

try:
    from . import _native
except ImportError:  # pragma: no cover - a source tree without the built extension
    _native = None

#: True when the native fused transforms are available.
HAS_NATIVE_TRANSFORMS: bool = _native is not None and hasattr(_native, "to_device")

_U8, _U16, _F32 = np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)

#: Permutation from a 4-D host layout to a different 4-D device layout (same layout: identity).
_PERMS: dict[tuple[str, str], tuple[int, ...]] = {
    ("NCHW", "NHWC"): (0, 2, 3, 1),
    ("NCHW", "NHCW"): (0, 2, 1, 3),
    ("NHWC", "NHCW"): (0, 1, 3, 2),
}


@functools.lru_cache(maxsize=256)
def _perm(host_order: str, device_order: str, ndim: int) -> tuple[int, ...]:
    if ndim != 4 or device_order in ("NC", "NHW", "AUTO") or host_order == device_order:
        return tuple(range(ndim))
    try:
        return _PERMS[(host_order, device_order)]
    except KeyError:
        raise ValueError(f"no transform from host {host_order} to device {device_order}") from None


@functools.lru_cache(maxsize=256)
def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


def _feature_axis(device_order: str, ndim: int) -> int:
    """Axis of the features (channels) in the device layout."""
    if ndim == 4 and device_order == "NHCW":
        return 2
    return ndim - 1


_PARAMS_CACHE = "_hailo_ort_native_params"


def _native_params(quant: QuantInfo) -> tuple[np.ndarray, np.ndarray, float, float] | None:
    """Scales, zero points and float32 limvals as the native kernel takes them, or None to use
    the reference (NaN parameters, mismatched per-feature lists)."""
    if quant.per_feature:
        # Building and hashing the tuples costs microseconds for ~100 features: the last result
        # is kept on the QuantInfo with copies of what it was computed from, and reused while
        # those compare equal (list equality is cheap; in-place edits of the lists are seen).
        scales, zps, lo, hi, zp = (
            quant.scales,
            quant.zps,
            quant.limvals_min,
            quant.limvals_max,
            quant.zp,
        )
        cached = quant.__dict__.get(_PARAMS_CACHE)
        if (
            cached is not None
            and cached[2] == lo
            and cached[3] == hi
            and cached[4] == zp
            and cached[0] == scales
            and cached[1] == zps
        ):
            return cached[5]
        result = _params(tuple(scales), tuple(zps or [zp] * len(scales)), lo, hi)
        quant.__dict__[_PARAMS_CACHE] = (list(scales), list(zps), lo, hi, zp, result)
        return result
    return _params((quant.scale,), (quant.zp,), quant.limvals_min, quant.limvals_max)


@functools.lru_cache(maxsize=512)
def _params(
    scales: tuple[float, ...], zps: tuple[float, ...], lo: float, hi: float
) -> tuple[np.ndarray, np.ndarray, float, float] | None:
    s = np.asarray(scales, dtype=np.float32)
    z = np.asarray(zps, dtype=np.float32)
    if s.ndim != 1 or s.shape != z.shape or s.size == 0:
        return None  # the reference reports the mismatch
    if np.isnan(s).any() or np.isnan(z).any() or math.isnan(lo) or math.isnan(hi):
        return None
    s.flags.writeable = False
    z.flags.writeable = False
    return s, z, float(np.float32(lo)), float(np.float32(hi))


def _plain(a: object, dtype: np.dtype) -> bool:
    """``a`` is a C-contiguous aligned ndarray of ``dtype`` the kernel can read directly."""
    if type(a) is not np.ndarray or a.dtype != dtype:
        return False
    flags = a.flags
    return flags.c_contiguous and flags.aligned


_DEVICE_DTYPES: dict[object, np.dtype] = {"uint8": _U8, "uint16": _U16, _U8: _U8, _U16: _U16}


_LINE = 64
_ALIGN_FROM_BYTES = 16 * 1024  # smaller arrays: numpy's allocation as it is


def empty_aligned(shape: tuple[int, ...], dtype: np.dtype | str) -> np.ndarray:
    """A new C-contiguous array whose data starts on a 64-byte cache line (from 16 KiB).

    numpy's own large allocations start 16 bytes past a line, so every 64-byte vector store of a
    kernel writing them touches two lines (a transposing dequantize is ~20% slower). This is
    what the transforms return when no ``out`` is given.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < _ALIGN_FROM_BYTES:
        return np.empty(shape, dtype)
    raw = np.empty(nbytes + _LINE, np.uint8)
    skip = -raw.ctypes.data % _LINE
    return raw[skip : skip + nbytes].view(dtype).reshape(shape)


def _to_device_native(
    x: np.ndarray,
    quant: QuantInfo,
    device_dtype: str,
    host_order: str,
    device_order: str,
    out: np.ndarray | None,
    threads: int,
) -> np.ndarray | None:
    if not HAS_NATIVE_TRANSFORMS:
        return None
    dtype = _DEVICE_DTYPES.get(device_dtype) or np.dtype(device_dtype)
    if dtype != _U8 and dtype != _U16:
        return None
    params = _native_params(quant)
    if params is None:
        return None
    if type(x) is not np.ndarray or x.dtype != _F32:
        x = np.asarray(x, dtype=np.float32)
    if out is None or out.dtype != dtype:
        shape = tuple([x.shape[i] for i in _perm(host_order, device_order, x.ndim)])
        if out is not None:
            raise ValueError(f"to_device: out is {out.dtype}{out.shape}, expected {dtype}{shape}")
        out = empty_aligned(shape, dtype)
    # The native call checks the rest (out's shape: ValueError "... expected shape ...") and,
    # non-strict, returns False for a layout it cannot use instead of raising.
    if _native.to_device(x, out, host_order, device_order, *params, threads, False):
        return out
    if not _plain(x, _F32):  # a strided x: copy it, try again
        x = np.require(x, requirements=("C", "A"))
        if _native.to_device(x, out, host_order, device_order, *params, threads, False):
            return out
    return None  # out is strided, read-only or overlaps x: the reference computes then copies


def _from_device_native(
    q: np.ndarray,
    quant: QuantInfo,
    host_order: str,
    device_order: str,
    out: np.ndarray | None,
    threads: int,
) -> np.ndarray | None:
    if not HAS_NATIVE_TRANSFORMS or not isinstance(q, np.ndarray):
        return None
    dtype = q.dtype
    if dtype != _U8 and dtype != _U16:
        return None
    params = _native_params(quant)
    if params is None:
        return None
    if out is None or out.dtype != _F32:
        shape = tuple([q.shape[i] for i in _inverse(_perm(host_order, device_order, q.ndim))])
        if out is not None:
            raise ValueError(f"from_device: out is {out.dtype}{out.shape}, expected float32{shape}")
        out = empty_aligned(shape, np.float32)
    scales, zps = params[0], params[1]
    if _native.from_device(q, out, host_order, device_order, scales, zps, threads, False):
        return out
    if not _plain(q, dtype):
        q = np.require(q, requirements=("C", "A"))
        if _native.from_device(q, out, host_order, device_order, scales, zps, threads, False):
            return out
    return None


def to_device(
    x: np.ndarray,
    quant: QuantInfo,
    device_dtype: str = "uint8",
    host_order: str = "NCHW",
    device_order: str = "NHWC",
    out: np.ndarray | None = None,
    *,
    threads: int = 0,
) -> np.ndarray:
    """Quantize float ``x`` and lay it out as the device expects.

    Runs the native fused kernel when it can (``threads``: 0 automatic, 1 single-threaded, n at
    most n threads; small tensors always use one), else :func:`to_device_reference`.
    """
    if threads < 0:
        raise ValueError("to_device: threads must be >= 0 (0: automatic)")
    result = _to_device_native(x, quant, device_dtype, host_order, device_order, out, threads)
    if result is not None:
        return result
    return to_device_reference(x, quant, device_dtype, host_order, device_order, out)


def from_device(
    q: np.ndarray,
    quant: QuantInfo,
    host_order: str = "NCHW",
    device_order: str = "NHWC",
    out: np.ndarray | None = None,
    *,
    threads: int = 0,
) -> np.ndarray:
    """Dequantize device values ``q`` to float32 in the host layout.

    Runs the native fused kernel for uint8/uint16 ``q`` when it can, else
    :func:`from_device_reference`.
    """
    if threads < 0:
        raise ValueError("from_device: threads must be >= 0 (0: automatic)")
    result = _from_device_native(q, quant, host_order, device_order, out, threads)
    if result is not None:
        return result
    return from_device_reference(q, quant, host_order, device_order, out)


class Transform(Protocol):
    """A prepared transform for one stream and one tensor shape (see :func:`prepare_to_device`).

    ``transform(x, out=None)`` requires ``x`` to be exactly ``in_dtype`` / ``in_shape`` (and, on
    the native path, C-contiguous and aligned; ``out`` exactly ``out_dtype`` / ``out_shape``,
    writeable, not overlapping ``x``); anything else raises TypeError (dtype, not an array) or
    ValueError (shape, layout). Returns ``out`` (a new array when None).
    """

    @property
    def in_shape(self) -> tuple[int, ...]: ...
    @property
    def out_shape(self) -> tuple[int, ...]: ...
    @property
    def in_dtype(self) -> np.dtype: ...
    @property
    def out_dtype(self) -> np.dtype: ...
    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray: ...


class ReferenceTransform:
    """:class:`Transform` running the numpy reference (no native module, NaN parameters, or
    parameters the native kernel rejects); same checks on ``x`` and ``out``."""

    def __init__(
        self,
        quantizes: bool,
        quant: QuantInfo,
        device_dtype: np.dtype,
        host_order: str,
        device_order: str,
        in_shape: tuple[int, ...],
    ) -> None:
        self.quantizes = quantizes
        self._what = "to_device" if quantizes else "from_device"
        self._quant = copy.deepcopy(quant)
        self._host_order = host_order
        self._device_order = device_order
        self.in_shape = in_shape
        ndim = len(in_shape)
        perm = _perm(host_order, device_order, ndim)
        if quantizes:
            self.in_dtype, self.out_dtype = _F32, device_dtype
            self.out_shape = tuple(in_shape[i] for i in perm)
        else:
            self.in_dtype, self.out_dtype = device_dtype, _F32
            self.out_shape = tuple(in_shape[i] for i in _inverse(perm))
        self._device_dtype = device_dtype

    def _check(self, a: object, dtype: np.dtype, shape: tuple[int, ...], name: str) -> None:
        what = self._what
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{what}: {name} must be a numpy array, got {type(a).__name__}")
        if a.dtype != dtype:
            raise TypeError(f"{what}: {name} must be {dtype}{shape}, got {a.dtype}{a.shape}")
        if a.shape != shape:
            raise ValueError(f"{what}: {name} is {a.dtype}{a.shape}, expected shape {shape}")

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        self._check(x, self.in_dtype, self.in_shape, "input")
        if out is not None:
            self._check(out, self.out_dtype, self.out_shape, "out")
            if not out.flags.writeable:
                raise ValueError(f"{self._what}: out is read-only")
        if self.quantizes:
            return to_device_reference(
                x, self._quant, self._device_dtype, self._host_order, self._device_order, out
            )
        return from_device_reference(x, self._quant, self._host_order, self._device_order, out)


def _prepare(
    quantizes: bool,
    quant: QuantInfo,
    device_dtype: str | np.dtype,
    host_order: str,
    device_order: str,
    shape: tuple[int, ...] | list[int],
    threads: int,
) -> Transform:
    what = "to_device" if quantizes else "from_device"
    if threads < 0:
        raise ValueError(f"{what}: threads must be >= 0 (0: automatic)")
    dtype = _DEVICE_DTYPES.get(device_dtype) or np.dtype(device_dtype)
    if dtype != _U8 and dtype != _U16:
        raise TypeError(f"{what}: device dtype must be uint8 or uint16, got {dtype}")
    in_shape = tuple(int(d) for d in shape)
    if any(d < 0 for d in in_shape):
        raise ValueError(f"{what}: negative dimension in shape {in_shape}")
    _perm(host_order, device_order, len(in_shape))  # ValueError for an unknown layout pair
    params = _native_params(quant) if HAS_NATIVE_TRANSFORMS else None
    if params is not None:
        try:
            return _native.PreparedTransform(
                quantizes, dtype.name, host_order, device_order, list(in_shape), *params, threads
            )
        except ValueError:
            pass  # e.g. a per-feature list not matching the feature axis: the reference reports it
    return ReferenceTransform(quantizes, quant, dtype, host_order, device_order, in_shape)


def prepare_to_device(
    quant: QuantInfo,
    device_dtype: str | np.dtype,
    host_order: str,
    device_order: str,
    host_shape: tuple[int, ...] | list[int],
    *,
    threads: int = 0,
) -> Transform:
    """A callable doing :func:`to_device` for float32 host tensors of exactly ``host_shape``.

    Layout, kernel and per-feature tables are fixed once (``quant`` is copied: later edits to
    it are not seen), so each call only checks its arrays. Native when possible (safe to call
    from several threads at once), else a :class:`ReferenceTransform`.
    """
    return _prepare(True, quant, device_dtype, host_order, device_order, host_shape, threads)


def prepare_from_device(
    quant: QuantInfo,
    device_dtype: str | np.dtype,
    host_order: str,
    device_order: str,
    device_shape: tuple[int, ...] | list[int],
    *,
    threads: int = 0,
) -> Transform:
    """A callable doing :func:`from_device` for ``device_dtype`` device tensors of exactly
    ``device_shape``; as :func:`prepare_to_device`."""
    return _prepare(False, quant, device_dtype, host_order, device_order, device_shape, threads)


def _copy_into(out: np.ndarray, result: np.ndarray, what: str) -> np.ndarray:
    """Copy a reference result into the caller's ``out`` after checking it matches."""
    if out.shape != result.shape or out.dtype != result.dtype:
        raise ValueError(
            f"{what}: out is {out.dtype}{out.shape}, expected {result.dtype}{result.shape}"
        )
    np.copyto(out, result)
    return out


def to_device_reference(
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
    return _copy_into(out, q, "to_device")


def from_device_reference(
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
    return _copy_into(out, y, "from_device")
