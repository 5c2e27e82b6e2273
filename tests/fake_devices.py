"""Test doubles for the device layer: a device that fails on demand, installed as HailoRT.

``install_fake_hailort(monkeypatch, device)`` puts a module at
``hailo_ort.runtime.devices.hailort`` whose ``open_device(...)`` returns ``device``: the session
reaches it through the same lazy entry point as the real HailoRT device.
"""

from __future__ import annotations

import sys
import threading
import types
from typing import Any

import numpy as np
import pytest

from hailo_ort.errors import DeviceError
from hailo_ort.hailoop.types import CompiledPartition
from hailo_ort.runtime.devices.base import Device, LoadedPartition
from hailo_ort.runtime.devices.emulator import EmulatorDevice


class FaultyPartition(LoadedPartition):
    """Computes through the emulator, but fails as ``device.mode`` says: "raise", "hang",
    "bad_shape", "raise_in_submit" or None (works)."""

    def __init__(self, device: FaultyDevice, inner: LoadedPartition) -> None:
        self.device = device
        self.inner = inner
        self.inputs = inner.inputs
        self.outputs = inner.outputs
        self.batch_size = inner.batch_size
        self.closed = False

    def infer(self, inputs: dict[str, np.ndarray], timeout_ms: int) -> dict[str, np.ndarray]:
        raise AssertionError("the session uses infer_async")

    def infer_async(self, inputs, callback, timeout_ms) -> None:
        self.device.calls += 1
        mode = self.device.mode
        if mode == "raise_in_submit":
            raise DeviceError("fake: submit failed")
        if mode == "hang":
            self.device.hung.append(callback)  # never called back
            return
        if mode == "raise":
            threading.Thread(
                target=callback, args=(None, DeviceError("fake: device fault"))
            ).start()
            return
        if mode == "bad_shape":

            def wrong(out: Any, err: Any) -> None:
                if out is not None:
                    out = {k: v[..., :1] for k, v in out.items()}
                callback(out, err)

            self.inner.infer_async(inputs, wrong, timeout_ms)
            return
        self.inner.infer_async(inputs, callback, timeout_ms)

    def close(self) -> None:
        self.closed = True
        self.inner.close()


class FaultyDevice(Device):
    kind = "hailort"

    def __init__(self, arch: str = "HAILO8L") -> None:
        self.arch = arch
        self.mode: str | None = None
        self.calls = 0
        self.hung: list[Any] = []
        self.loaded: list[FaultyPartition] = []
        self.closed = False
        self._emulator = EmulatorDevice(arch)

    def load(self, compiled: CompiledPartition, batch_size: int = 1) -> FaultyPartition:
        part = FaultyPartition(self, self._emulator.load(compiled, batch_size))
        self.loaded.append(part)
        return part

    def close(self) -> None:
        self.closed = True
        self._emulator.close()


def install_fake_hailort(monkeypatch: pytest.MonkeyPatch, device: Device | None) -> list[dict]:
    """Make ``hailo_ort.runtime.devices.hailort.open_device`` return ``device`` (None: the
    DeviceError the real one raises when hailo_platform is missing). Returns the list of keyword
    arguments it was called with."""
    calls: list[dict] = []
    module = types.ModuleType("hailo_ort.runtime.devices.hailort")

    def open_device(**kwargs: Any) -> Device:
        calls.append(kwargs)
        if device is None:
            raise DeviceError("hailo_platform is not installed (fake HailoRT module)")
        return device

    module.open_device = open_device  # type: ignore[attr-defined]
    module.available = lambda: device is not None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hailo_ort.runtime.devices.hailort", module)
    return calls
