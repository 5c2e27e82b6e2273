"""Devices that run compiled partitions: HailoRT (``hailort.py``) and the emulator.

:func:`open_device` picks one from the ``HailoExecutionProvider`` options. The HailoRT device
lives in ``hailo_ort.runtime.devices.hailort`` and is imported lazily: its entry point is
``open_device(device_id=None, group_id=None, multi_process_service=False) -> Device``, which
raises DeviceError when ``hailo_platform`` or a device is missing.
"""

from __future__ import annotations

import importlib
import logging

from ...errors import DeviceError
from ..providers import HailoOptions
from .base import Device, LoadedPartition

__all__ = ["Device", "LoadedPartition", "open_device", "open_hailort_device"]

_log = logging.getLogger("hailo_ort")


def open_hailort_device(options: HailoOptions) -> Device:
    """Open a HailoRT device; DeviceError when HailoRT or a device is missing."""
    module = importlib.import_module("hailo_ort.runtime.devices.hailort")
    return module.open_device(
        device_id=options.device_id,
        group_id=options.group_id,
        multi_process_service=options.multi_process_service,
    )


def open_device(options: HailoOptions) -> Device | None:
    """The device the options ask for; None when ``device="auto"`` finds no HailoRT device.

    ``"hailort"`` and ``"emulator"`` raise DeviceError when that device cannot be opened; so
    does ``"auto"`` when a Hailo device is present but cannot be opened (e.g. in use by another
    process), rather than reporting "no device".
    """
    if options.device == "emulator":
        from .emulator import EmulatorDevice

        return EmulatorDevice(latency_ms=options.latency_ms)
    if options.device == "hailort":
        return open_hailort_device(options)
    try:
        return open_hailort_device(options)
    except DeviceError as exc:
        if _hailort_device_present():
            raise  # a device is there but cannot be opened (busy, driver...): say why
        _log.debug("no HailoRT device: %s", exc)
        return None


def _hailort_device_present() -> bool:
    """Whether HailoRT is installed and sees a Hailo device (whether or not it can be opened)."""
    module = importlib.import_module("hailo_ort.runtime.devices.hailort")
    return bool(module.available())
