"""The interface between the session plan and a device (HailoRT or the emulator).

A device runs compiled partitions on device-side tensors: quantized (uint8/uint16), in the
``StreamSpec.device_order`` layout, batch first, keyed by vstream name. The host transforms
(``hailo_ort.transforms``) are the session's job, identical for every device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from ...hailoop.types import CompiledPartition, StreamSpec

DeviceOutputs = dict[str, np.ndarray]


class LoadedPartition(ABC):
    """One compiled partition configured on a device."""

    inputs: list[StreamSpec]
    outputs: list[StreamSpec]
    batch_size: int

    @abstractmethod
    def infer(self, inputs: dict[str, np.ndarray], timeout_ms: int) -> DeviceOutputs:
        """Run one batch synchronously; raises DeviceError on failure or timeout."""

    def infer_async(
        self,
        inputs: dict[str, np.ndarray],
        callback: Callable[[DeviceOutputs | None, BaseException | None], None],
        timeout_ms: int,
    ) -> None:
        """Run one batch and call ``callback(outputs, error)`` when done (default: synchronous)."""
        try:
            out = self.infer(inputs, timeout_ms)
        except BaseException as exc:  # handed to the callback, never lost
            callback(None, exc)
            return
        callback(out, None)

    @abstractmethod
    def close(self) -> None:
        """Release device resources; idempotent."""


class Device(ABC):
    """A Hailo device (real or emulated)."""

    kind: str  # "hailort" | "emulator"
    arch: str  # device arch as HailoRT names it, e.g. "HAILO8L"

    @abstractmethod
    def load(self, compiled: CompiledPartition, batch_size: int = 1) -> LoadedPartition:
        """Configure ``compiled`` on the device (checks arch compatibility first)."""

    @abstractmethod
    def close(self) -> None:
        """Release the device; idempotent."""
