"""Pooled page-aligned host buffers for zero-copy I/O.

:class:`BufferPool` hands out numpy arrays over page-aligned memory whose size is rounded up to
whole pages (what DMA wants: HailoRT ``set_buffer``, ``dma_map``), and that ONNX Runtime can
bind without copies (``IOBinding.bind_output(..., buffer_ptr=arr.ctypes.data)``,
``OrtValue.ortvalue_from_numpy(arr)``).

Release is automatic and safe: a buffer goes back to the pool only when the array it was
handed out as, and every view of that array, has been garbage collected (in CPython: when the
last reference is dropped), so the same memory is never given to two live users. Use ``del``
(or let the array go out of scope) to return it. The pool is thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from . import _native


def page_size() -> int:
    """The OS page size in bytes (4 KiB on x86-64, 16 KiB on some arm64 kernels)."""
    return int(_native.page_size())


@dataclass(frozen=True)
class PoolStats:
    """Counters of a :class:`BufferPool`."""

    allocations: int  # buffers allocated from the OS
    reuses: int  # acquisitions served from a pooled buffer
    returns: int  # buffers given back (their last array died)
    discards: int  # given back but freed because the pool was full (max_free_bytes)
    live: int  # buffers currently handed out
    live_bytes: int
    free: int  # buffers waiting in the pool
    free_bytes: int


class BufferPool:
    """A thread-safe pool of page-aligned buffers handed out as numpy arrays without copies.

    Buffers are reused when a later request needs the same page-rounded byte size (shape and
    dtype may differ). ``max_free_bytes`` caps the memory kept for reuse (None: no cap).
    """

    def __init__(self, max_free_bytes: int | None = None) -> None:
        if max_free_bytes is not None and max_free_bytes < 0:
            raise ValueError("BufferPool: max_free_bytes must be >= 0")
        cap = np.iinfo(np.uint64).max if max_free_bytes is None else int(max_free_bytes)
        self._pool = _native.BufferPool(cap)

    def acquire(self, shape: Sequence[int] | int, dtype: Any = np.float32) -> np.ndarray:
        """A C-contiguous, writable, page-aligned array of ``shape`` and ``dtype``.

        Contents are undefined (like :func:`numpy.empty`): a fresh buffer is zeroed, a reused one
        holds what its last user left. Raises TypeError for object dtypes, ValueError for a
        negative or too large shape.
        """
        dims = [int(shape)] if isinstance(shape, (int, np.integer)) else [int(d) for d in shape]
        return self._pool.acquire(dims, np.dtype(dtype))

    def stats(self) -> PoolStats:
        """Allocation / reuse counters and the memory held."""
        d = self._pool.stats()
        return PoolStats(**{k: int(d[k]) for k in PoolStats.__dataclass_fields__})

    def trim(self) -> int:
        """Free every buffer waiting in the pool (not those handed out); returns bytes freed."""
        return int(self._pool.trim())
