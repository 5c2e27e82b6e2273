"""The HailoRT device: runs compiled partitions on a Hailo accelerator through ``hailo_platform``.

Entry points: :func:`open_device` (one shared HailoRT ``VDevice`` per process and key, reference
counted), :func:`available` and :func:`fork_provider_available`.

Two HailoRT APIs are driven, chosen by version and feature detection:

* HailoRT ≥ 4.18: the async InferModel API (``VDevice.create_infer_model`` → ``configure()`` →
  ``create_bindings`` / ``wait_for_async_ready`` / ``run_async``), one binding per frame, with the
  output buffers page-aligned and reused.
* older HailoRT: ``ConfigureParams.create_from_hef`` + ``VDevice.configure`` + ``InferVStreams``.

Streams are configured in the exact device-side format the session hands over (uint8/uint16,
NHWC/NC), so HailoRT adds no host transform. Every wait is bounded; a failed or timed-out job
raises :class:`~hailo_ort.errors.DeviceError` naming the partition and the HailoRT status, and
the partition is reconfigured before its next job. See ``docs/hailort-device.md``.
"""

from __future__ import annotations

import heapq
import importlib
import itertools
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...archs import check_hef_compatible, get_arch
from ...errors import ArchError, DeviceError, HailoOrtError
from ...hailoop.types import CompiledPartition, StreamSpec
from ..providers import fork_provider_available
from .base import Device, DeviceOutputs, LoadedPartition

__all__ = [
    "ASYNC_API_MIN_VERSION",
    "HailoRTDevice",
    "HefIncompatibleError",
    "available",
    "fork_provider_available",
    "hailort_status",
    "open_device",
    "open_vdevices",
]

log = logging.getLogger(__name__)

#: First HailoRT release whose Python API has the async InferModel API.
ASYNC_API_MIN_VERSION = (4, 18)

MISSING_HAILO_PLATFORM = (
    "hailo_platform is not installed: install HailoRT's Python wheel (hailort) matching the "
    "HailoRT library and PCIe driver on this machine (Hailo Developer Zone), "
    "or run the model on the emulator device"
)

#: vstream timeout of the legacy (InferVStreams) path; each call is also bounded by its own timeout.
LEGACY_VSTREAM_TIMEOUT_MS = 10_000

_FORMAT_TYPES = {"uint8": "UINT8", "uint16": "UINT16", "float32": "FLOAT32"}
_FORMAT_ORDERS = {"NHWC": "NHWC", "NC": "NC", "NHCW": "NHCW", "NHW": "NHW"}
_NUMPY_OF_FORMAT = {"UINT8": np.uint8, "UINT16": np.uint16, "FLOAT32": np.float32}

# Python exception classes of hailo_platform → the HailoRT status they stand for.
_STATUS_OF_CLASS = {
    "HailoRTTimeout": "HAILO_TIMEOUT",
    "HailoRTStreamAborted": "HAILO_STREAM_ABORT",
    "HailoRTStreamAbortedByUser": "HAILO_STREAM_ABORTED_BY_USER",
    "HailoRTInvalidOperationException": "HAILO_INVALID_OPERATION",
    "HailoRTInvalidArgumentException": "HAILO_INVALID_ARGUMENT",
    "HailoRTNotFoundException": "HAILO_NOT_FOUND",
    "HailoRTInvalidHEFException": "HAILO_INVALID_HEF",
    "HailoRTHEFNotCompatibleWithDevice": "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE",
    "HailoRTEthException": "HAILO_ETH_FAILURE",
    "HailoRTDriverOperationFailedException": "HAILO_DRIVER_OPERATION_FAILED",
    "HailoRTPCIeDriverException": "HAILO_DRIVER_OPERATION_FAILED",
    "HailoRTNetworkGroupNotActivatedException": "HAILO_NETWORK_GROUP_NOT_ACTIVATED",
    "HailoCommunicationClosedException": "HAILO_COMMUNICATION_CLOSED",
    "HailoRTFirmwareControlFailedException": "HAILO_FW_CONTROL_FAILURE",
    "HailoRTInvalidFrameException": "HAILO_INVALID_FRAME",
}
_STATUS_IN_TEXT = re.compile(r"\b(HAILO_[A-Z0-9_]+)\b")


class HefIncompatibleError(DeviceError, ArchError):
    """The HEF was built for an architecture this device cannot run (both a DeviceError and an
    ArchError)."""


# --------------------------------------------------------------------------------------------
# hailo_platform import, version, availability


def _import_hailo_platform() -> Any:
    try:
        return importlib.import_module("hailo_platform")
    except ImportError as exc:
        raise DeviceError(f"{MISSING_HAILO_PLATFORM} ({exc})") from exc
    except Exception as exc:  # the wheel raises plain exceptions on library/version mismatch
        raise DeviceError(
            f"hailo_platform failed to import ({type(exc).__name__}: {exc}): reinstall HailoRT's "
            "Python wheel matching the installed HailoRT library"
        ) from exc


def _version_tuple(hp: Any) -> tuple[int, ...] | None:
    text = str(getattr(hp, "__version__", "") or "")
    parts = re.findall(r"\d+", text)
    return tuple(int(p) for p in parts[:3]) if parts else None


def _uses_async_api(hp: Any) -> bool:
    """Whether to drive the InferModel API: present on VDevice and HailoRT ≥ 4.18 (if known)."""
    if not callable(getattr(hp.VDevice, "create_infer_model", None)):
        return False
    version = _version_tuple(hp)
    return version is None or version[:2] >= ASYNC_API_MIN_VERSION


def available() -> bool:
    """Whether ``hailo_platform`` is importable and at least one Hailo device is present."""
    try:
        hp = importlib.import_module("hailo_platform")
        return len(list(hp.Device.scan())) > 0
    except Exception:
        return False


# --------------------------------------------------------------------------------------------
# HailoRT errors → DeviceError


def hailort_status(exc: BaseException) -> str:
    """The HailoRT status an exception from ``hailo_platform`` stands for, e.g. "HAILO_TIMEOUT"."""
    match = _STATUS_IN_TEXT.search(str(exc))
    if match:
        return match.group(1)
    for cls in type(exc).__mro__:
        if cls.__name__ in _STATUS_OF_CLASS:
            return _STATUS_OF_CLASS[cls.__name__]
    return type(exc).__name__


def _hailort_error(
    where: str,
    action: str,
    exc: BaseException,
    *,
    hp: Any = None,
    hef_arch: str | None = None,
    device_arch: str | None = None,
    timeout_ms: int | None = None,
    hef_warnings: Sequence[str] = (),
) -> DeviceError:
    """A DeviceError for ``exc`` raised by HailoRT while doing ``action`` for ``where``."""
    if isinstance(exc, HailoOrtError):
        return exc if isinstance(exc, DeviceError) else DeviceError(f"{where}: {exc}")
    status = hailort_status(exc)
    version = ".".join(map(str, _version_tuple(hp) or ())) if hp is not None else ""
    hailort = f"HailoRT {version}" if version else "HailoRT"
    if status == "HAILO_TIMEOUT":
        limit = f" after {timeout_ms} ms" if timeout_ms is not None else ""
        return DeviceError(f"{where}: {action} timed out{limit} (HAILO_TIMEOUT)")
    if status == "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE":
        if hef_arch and device_arch:
            try:
                check_hef_compatible(hef_arch, device_arch)
            except ArchError as arch_exc:
                return HefIncompatibleError(
                    f"{where}: {arch_exc} (HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE)"
                )
        return HefIncompatibleError(
            f"{where}: {hailort} says the HEF is not compatible with this device"
            f"{f' ({device_arch})' if device_arch else ''} (HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE): "
            "recompile it with --arch matching the device"
        )
    if status == "HAILO_HEF_NOT_SUPPORTED":
        notes = f"; HEF reader: {'; '.join(hef_warnings)}" if hef_warnings else ""
        return DeviceError(
            f"{where}: {hailort} refuses this HEF as not supported (HAILO_HEF_NOT_SUPPORTED): it is "
            "outdated or uses features this HailoRT does not know. HailoRT 4.21 and newer refuse "
            "HEFs without the PERIPH_CALCULATION_IN_HAILORT extension (HEFs from old Dataflow "
            f"Compilers): recompile it with a Dataflow Compiler matching {hailort}{notes}"
        )
    if status in ("HAILO_INVALID_HEF", "HAILO_HEF_FILE_CORRUPTED"):
        return DeviceError(f"{where}: {hailort} cannot parse the HEF ({status}): {exc}")
    if status in ("HAILO_OUT_OF_PHYSICAL_DEVICES", "HAILO_DEVICE_IN_USE"):
        return DeviceError(
            f"{where}: {action} failed ({status}): the device is in use by another process; "
            "share it with group_id/multi_process_service=True (HailoRT service running) "
            "or stop the other process"
        )
    if status.startswith("HAILO_DRIVER") or status == "HAILO_PCIE_DRIVER_NOT_INSTALLED":
        return DeviceError(
            f"{where}: {action} failed ({status}): {exc}; check the Hailo PCIe driver "
            "(dmesg | grep hailo, hailortcli fw-control identify)"
        )
    return DeviceError(f"{where}: {action} failed ({status}): {exc}")


# --------------------------------------------------------------------------------------------
# Timeouts of async jobs: one watchdog thread for the process


class _Watchdog:
    """Calls functions at deadlines (monotonic seconds) on one daemon thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, deadline: float, fn: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (deadline, next(self._seq), fn))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="hailo-ort-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                deadline, _, fn = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
            try:
                fn()
            except Exception:  # a watchdog action must never kill the thread
                log.exception("hailo-ort watchdog action failed")


_WATCHDOG = _Watchdog()


# --------------------------------------------------------------------------------------------
# The shared VDevice registry


@dataclass
class _SharedVDevice:
    key: tuple[str | None, str | None, bool]
    vdevice: Any
    arch: str
    device_ids: list[str]
    refs: int = 0


_REGISTRY: dict[tuple[str | None, str | None, bool], _SharedVDevice] = {}
_REGISTRY_LOCK = threading.Lock()
_REGISTRY_PID = os.getpid()


def _registry_for_this_process() -> dict[tuple[str | None, str | None, bool], _SharedVDevice]:
    """The registry; emptied in a forked child (a VDevice belongs to the process that made it)."""
    global _REGISTRY_PID
    if os.getpid() != _REGISTRY_PID:
        _REGISTRY.clear()
        _REGISTRY_PID = os.getpid()
    return _REGISTRY


def open_vdevices() -> dict[tuple[str | None, str | None, bool], int]:
    """The VDevices this process holds open: key (device_id, group_id, multi_process_service) →
    number of :class:`HailoRTDevice` objects using it."""
    with _REGISTRY_LOCK:
        return {key: shared.refs for key, shared in _registry_for_this_process().items()}


def _same_device_id(a: str, b: str) -> bool:
    """PCIe ids compare with or without the domain ("0000:01:00.0" == "01:00.0")."""
    a, b = str(a).lower(), str(b).lower()
    return a == b or a.endswith(":" + b) or b.endswith(":" + a)


def _normalize_device_arch(value: Any) -> str:
    """HailoRT's ``device_architecture`` (enum or text) → "HAILO8", "HAILO8L", ..."""
    name = getattr(value, "name", None) or str(value)
    name = name.rsplit(".", 1)[-1].upper()
    if name.startswith("HAILO_ARCH_"):
        name = "HAILO" + name[len("HAILO_ARCH_") :]
    if name in ("HAILO8_A0", "HAILO8_B0"):
        return "HAILO8"
    return name


def _read_device_arch(hp: Any, vdevice: Any, device_ids: Sequence[str]) -> str:
    """The device arch from the firmware's board info (``control.identify()``)."""
    attempts: list[Callable[[], Any]] = [lambda: vdevice.get_physical_devices()[0]]
    attempts += [lambda dev_id=dev_id: hp.Device(dev_id) for dev_id in device_ids[:1]]
    for get_device in attempts:
        try:
            info = get_device().control.identify()
            return _normalize_device_arch(info.device_architecture)
        except Exception as exc:
            log.debug("reading the Hailo device arch failed: %s", exc)
    return "UNKNOWN"


def _create_shared_vdevice(
    hp: Any, key: tuple[str | None, str | None, bool], scheduling: str
) -> _SharedVDevice:
    device_id, group_id, multi_process_service = key
    where = "HailoRT device"
    try:
        found = [str(d) for d in hp.Device.scan()]
    except Exception as exc:
        raise _hailort_error(where, "scanning for Hailo devices", exc, hp=hp) from exc
    if not found:
        raise DeviceError(
            "no Hailo device found (hailo_platform Device.scan() is empty): check that the "
            "accelerator is seated and the hailo PCIe driver is loaded (hailortcli scan), "
            "or use the emulator device"
        )
    if device_id is not None:
        if not any(_same_device_id(device_id, d) for d in found):
            raise DeviceError(f"Hailo device {device_id!r} not found; devices: {', '.join(found)}")
        where = f"Hailo device {device_id}"
    try:
        params = hp.VDevice.create_params()
        params.scheduling_algorithm = getattr(hp.HailoSchedulingAlgorithm, scheduling.upper())
        if group_id is not None:
            params.group_id = group_id
        if multi_process_service:
            try:
                params.multi_process_service = True
            except AttributeError:  # HailoRT < 4.18: read-only, implied by a scheduler
                if not getattr(params, "multi_process_service", False):
                    raise DeviceError(
                        "this HailoRT cannot set multi_process_service on the VDevice params"
                    ) from None
        if device_id is not None:
            vdevice = hp.VDevice(params, device_ids=[device_id])
        else:
            vdevice = hp.VDevice(params)
    except Exception as exc:
        raise _hailort_error(where, "creating the VDevice", exc, hp=hp) from exc
    ids = [device_id] if device_id is not None else found
    try:
        ids = [str(d) for d in vdevice.get_physical_devices_ids()] or ids
    except Exception:
        pass
    return _SharedVDevice(key, vdevice, _read_device_arch(hp, vdevice, ids), ids)


def open_device(
    device_id: str | None = None,
    group_id: str | None = None,
    multi_process_service: bool = False,
    scheduling: str = "round_robin",
) -> Device:
    """Open the Hailo device (shared: one HailoRT VDevice per process and argument set).

    ``group_id`` and ``multi_process_service`` go to the VDevice params (sessions and processes
    sharing a device); the scheduler is HailoRT's round robin, so many partitions share the device.
    Raises DeviceError when ``hailo_platform`` is missing or no device is found.
    """
    algorithm = str(scheduling).strip().lower().replace("-", "_")
    if algorithm != "round_robin":
        raise DeviceError(
            f"unsupported scheduling {scheduling!r}: only 'round_robin' (HailoRT's model "
            "scheduler, which lets sessions share the device) is supported"
        )
    hp = _import_hailo_platform()
    key = (device_id, group_id, bool(multi_process_service))
    with _REGISTRY_LOCK:
        registry = _registry_for_this_process()
        shared = registry.get(key)
        if shared is None:
            shared = _create_shared_vdevice(hp, key, algorithm)
            registry[key] = shared
        shared.refs += 1
    return HailoRTDevice(hp, shared)


def _release_shared(shared: _SharedVDevice) -> None:
    with _REGISTRY_LOCK:
        shared.refs -= 1
        if shared.refs > 0:
            return
        registry = _registry_for_this_process()
        if registry.get(shared.key) is shared:
            del registry[shared.key]
        try:
            shared.vdevice.release()
        except Exception as exc:
            log.warning("releasing the HailoRT VDevice failed: %s", exc)


# --------------------------------------------------------------------------------------------
# The device


def _hef_facts(hef: bytes) -> tuple[str | None, list[str]]:
    """(HEF arch name, reader warnings) from hailo_ort's own HEF reader.

    A HEF our reader cannot parse is left to HailoRT, whose own error is reported.
    """
    from ...hef import read

    try:
        info = read(hef)
    except Exception as exc:
        log.debug("hailo_ort.hef.read failed (%s); leaving the HEF to HailoRT", exc)
        return None, []
    arch = info.hw_arch_name
    return (str(arch) if arch else None), [str(w) for w in info.warnings]


class HailoRTDevice(Device):
    """A Hailo device opened through HailoRT (a reference to a shared VDevice)."""

    kind = "hailort"

    def __init__(self, hp: Any, shared: _SharedVDevice) -> None:
        self._hp = hp
        self._shared: _SharedVDevice | None = shared
        self.arch = shared.arch
        self.device_ids = list(shared.device_ids)
        self.hailort_version = ".".join(map(str, _version_tuple(hp) or ())) or "unknown"
        self.api = "async" if _uses_async_api(hp) else "vstreams"
        self._lock = threading.Lock()
        self._partitions: list[_HailoRTPartition] = []

    def __repr__(self) -> str:
        return (
            f"HailoRTDevice(arch={self.arch!r}, ids={self.device_ids}, "
            f"hailort={self.hailort_version}, api={self.api!r})"
        )

    @property
    def closed(self) -> bool:
        return self._shared is None

    def _vdevice(self) -> Any:
        shared = self._shared
        if shared is None:
            raise DeviceError("the HailoRT device is closed")
        return shared.vdevice

    def load(self, compiled: CompiledPartition, batch_size: int = 1) -> LoadedPartition:
        """Configure ``compiled`` (its HEF) on the device, after checking the HEF's arch."""
        vdevice = self._vdevice()
        index = getattr(getattr(compiled, "partition", None), "index", "?")
        where = f"partition {index}"
        if compiled.hef is None:
            raise DeviceError(
                f"{where} has no HEF (backend {compiled.backend!r}): it was compiled for "
                "emulation; run it on the emulator device or recompile it with the DFC"
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise DeviceError(f"{where}: batch_size must be a positive integer, got {batch_size!r}")
        hef = bytes(compiled.hef)
        hef_arch, warnings = _hef_facts(hef)
        if hef_arch is None and compiled.arch:
            try:
                hef_arch = get_arch(compiled.arch).device_name
            except ArchError:
                hef_arch = None
        if hef_arch and self.arch != "UNKNOWN":
            try:
                check_hef_compatible(hef_arch, self.arch)
            except ArchError as exc:
                raise HefIncompatibleError(f"{where}: {exc}") from None
        try:
            groups = list(self._hp.HEF(hef).get_network_group_names())
        except Exception as exc:
            raise _hailort_error(where, "reading the HEF", exc, hp=self._hp) from exc
        if groups:
            where = f"{where} (HEF network group {groups[0]!r})"
        context = _LoadContext(self._hp, vdevice, where, hef, hef_arch, self.arch, warnings)
        cls = _AsyncPartition if self.api == "async" else _VStreamsPartition
        partition = cls(self, compiled, batch_size, context)
        with self._lock:
            self._partitions.append(partition)
        return partition

    def _forget(self, partition: _HailoRTPartition) -> None:
        with self._lock:
            if partition in self._partitions:
                self._partitions.remove(partition)

    def close(self) -> None:
        """Close this device's partitions and drop its reference to the shared VDevice."""
        with self._lock:
            partitions, self._partitions = self._partitions, []
            shared, self._shared = self._shared, None
        for partition in partitions:
            partition.close()
        if shared is not None:
            _release_shared(shared)

    def __enter__(self) -> HailoRTDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class _LoadContext:
    hp: Any
    vdevice: Any
    where: str
    hef: bytes
    hef_arch: str | None
    device_arch: str
    hef_warnings: list[str] = field(default_factory=list)

    def error(self, action: str, exc: BaseException, timeout_ms: int | None = None) -> DeviceError:
        return _hailort_error(
            self.where,
            action,
            exc,
            hp=self.hp,
            hef_arch=self.hef_arch,
            device_arch=self.device_arch,
            timeout_ms=timeout_ms,
            hef_warnings=self.hef_warnings,
        )


def _enum(hp_enum: Any, name: str, where: str, what: str) -> Any:
    try:
        return getattr(hp_enum, name)
    except AttributeError:
        raise DeviceError(f"{where}: this HailoRT has no {what} {name}") from None


class _HailoRTPartition(LoadedPartition):
    """Shared parts: stream specs, input checks, close bookkeeping."""

    def __init__(
        self, device: HailoRTDevice, compiled: CompiledPartition, batch_size: int, ctx: _LoadContext
    ) -> None:
        self._device = device
        self._ctx = ctx
        self.where = ctx.where
        self.inputs = list(compiled.inputs)
        self.outputs = list(compiled.outputs)
        self.batch_size = batch_size
        self._closed = False
        # Filled by subclasses: per-frame shape and numpy dtype of each stream.
        self._in_frame: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        self._out_frame: dict[str, tuple[tuple[int, ...], np.dtype]] = {}

    def _format_names(self, spec: StreamSpec, kind: str) -> tuple[str, str]:
        ftype = _FORMAT_TYPES.get(str(spec.device_dtype).lower())
        order = _FORMAT_ORDERS.get(str(spec.device_order).upper())
        if ftype is None or ftype == "FLOAT32":
            raise DeviceError(
                f"{self.where}: {kind} {spec.vstream!r} has device dtype {spec.device_dtype!r}; "
                "the device takes quantized uint8 or uint16 tensors"
            )
        if order is None:
            raise DeviceError(
                f"{self.where}: {kind} {spec.vstream!r} has device order {spec.device_order!r}; "
                f"expected one of {', '.join(_FORMAT_ORDERS)}"
            )
        return ftype, order

    def _check_frame_shape(self, spec: StreamSpec, shape: tuple[int, ...], kind: str) -> None:
        if spec.device_shape and tuple(spec.device_shape[1:]) != tuple(shape):
            raise DeviceError(
                f"{self.where}: the HEF's {kind} {spec.vstream!r} has frame shape {list(shape)} "
                f"but the model expects {list(spec.device_shape[1:])} (device_shape "
                f"{list(spec.device_shape)})"
            )

    def _check_names(self, kind: str, hef_names: Sequence[str], specs: Sequence[StreamSpec]):
        wanted = [s.vstream for s in specs]
        if sorted(hef_names) != sorted(wanted):
            raise DeviceError(
                f"{self.where}: the HEF's {kind}s are {sorted(hef_names)} but the model's "
                f"HailoOp names {sorted(wanted)}"
            )

    def _checked_inputs(self, inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
        """Validate the device inputs; return them C-contiguous and the number of frames."""
        if self._closed:
            raise DeviceError(f"{self.where}: the partition is closed")
        unknown = sorted(set(inputs) - set(self._in_frame))
        missing = [name for name in self._in_frame if name not in inputs]
        if unknown or missing:
            raise DeviceError(
                f"{self.where}: device inputs must be {sorted(self._in_frame)}; "
                f"missing {missing}, unknown {unknown}"
            )
        frames: int | None = None
        arrays: dict[str, np.ndarray] = {}
        for name, (frame_shape, dtype) in self._in_frame.items():
            array = inputs[name]
            if not isinstance(array, np.ndarray):
                array = np.asarray(array)
            if array.dtype != dtype:
                raise DeviceError(
                    f"{self.where}: input {name!r} is {array.dtype}, the device takes {dtype} "
                    "(quantize it first)"
                )
            if array.ndim != len(frame_shape) + 1 or tuple(array.shape[1:]) != frame_shape:
                raise DeviceError(
                    f"{self.where}: input {name!r} has shape {list(array.shape)}, expected "
                    f"[batch, {', '.join(map(str, frame_shape))}]"
                )
            if frames is None:
                frames = array.shape[0]
            elif array.shape[0] != frames:
                raise DeviceError(f"{self.where}: the inputs have different batch sizes")
            arrays[name] = np.ascontiguousarray(array)
        if not frames:
            raise DeviceError(f"{self.where}: empty batch")
        return arrays, frames

    def close(self) -> None:
        """Shut the partition down (requests still pending fail with DeviceError); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._release()
        self._device._forget(self)

    def _release(self) -> None:
        """Release the HailoRT objects of the partition (subclasses)."""
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# Async InferModel API (HailoRT ≥ 4.18)


def _max_refcount(outputs: dict[str, np.ndarray]) -> int:
    """The largest reference count among the arrays of an output set (CPython)."""
    getrefcount = getattr(sys, "getrefcount", None)
    if getrefcount is None:  # no reference counts: never reuse
        return 1 << 30
    return max((getrefcount(outputs[name]) for name in outputs), default=0)


#: The count of an array referenced only by its output-set dict (measured, not assumed).
_POOL_ONLY_REFCOUNT = _max_refcount({"calibration": np.empty(1)})
#: Output sets kept per partition for reuse.
_POOL_LIMIT = 8


def _aligned_empty(shape: Sequence[int], dtype: Any) -> np.ndarray:
    try:
        from ..._native import aligned_empty

        return aligned_empty([int(d) for d in shape], np.dtype(dtype))
    except ImportError:  # pure-Python install: plain numpy buffers (HailoRT copies them anyway)
        return np.empty([int(d) for d in shape], dtype=np.dtype(dtype))


class _Request:
    """One infer call: finishes exactly once (success, HailoRT error, abort or timeout)."""

    def __init__(
        self,
        callback: Callable[[DeviceOutputs | None, BaseException | None], None],
        outputs: dict[str, np.ndarray],
        on_done: Callable[[_Request, bool], None],
    ) -> None:
        self._lock = threading.Lock()
        self._callback: Callable[[DeviceOutputs | None, BaseException | None], None] | None = (
            callback
        )
        self.outputs: dict[str, np.ndarray] | None = outputs
        self.pending = 1
        self.generation = -1
        self.reset_needed = True  # a failure means the configuration must be reset
        self.done = False
        self._on_done = on_done

    def chunk_done(self, error: BaseException | None) -> None:
        with self._lock:
            if self.done:
                return
            self.pending -= 1
            if error is None and self.pending > 0:
                return
        self.finish(error)

    def finish(self, error: BaseException | None) -> None:
        with self._lock:
            if self.done:
                return
            self.done = True
            callback, self._callback = self._callback, None
            outputs = self.outputs
        try:
            if callback is not None:
                if error is None:
                    callback(dict(outputs), None)  # the caller's own dict: its refs are counted
                else:
                    callback(None, error)
        except Exception:
            log.exception("hailo-ort: an inference callback raised")
        finally:
            self._on_done(self, error is None)
            self.outputs = None


class _AsyncPartition(_HailoRTPartition):
    """A partition on the InferModel API: one binding per frame, jobs bounded by timeouts.

    Outputs land in page-aligned buffers. A completed request's buffers go to a small pool and
    are reused only once the caller holds no reference to them any more (CPython reference
    counts), so results stay valid for as long as the caller keeps them. ``reuse_outputs =
    False`` turns the pool off. Buffers of failed or timed-out jobs are never reused (HailoRT
    might still write into them).
    """

    reuse_outputs: bool = True

    def __init__(
        self, device: HailoRTDevice, compiled: CompiledPartition, batch_size: int, ctx: _LoadContext
    ) -> None:
        super().__init__(device, compiled, batch_size, ctx)
        hp = ctx.hp
        try:
            model = ctx.vdevice.create_infer_model(ctx.hef)
        except Exception as exc:
            raise ctx.error("loading the HEF (create_infer_model)", exc) from exc
        try:
            model.set_batch_size(batch_size)
            self._check_names("input", list(model.input_names), self.inputs)
            self._check_names("output", list(model.output_names), self.outputs)
            for spec in self.inputs:
                stream = model.input(spec.vstream)
                self._in_frame[spec.vstream] = self._set_format(stream, spec, "input")
            self.nms_outputs: list[str] = []
            for spec in self.outputs:
                stream = model.output(spec.vstream)
                if stream.is_nms:
                    # Passed on as HailoRT gives it: float32, NMS by class (docs/hailort-device.md).
                    nms_order = "HAILO_NMS_BY_CLASS"
                    if not hasattr(hp.FormatOrder, nms_order):
                        nms_order = "HAILO_NMS"  # HailoRT < 4.20 name of the same layout
                    stream.set_format_type(hp.FormatType.FLOAT32)
                    stream.set_format_order(getattr(hp.FormatOrder, nms_order))
                    self.nms_outputs.append(spec.vstream)
                    shape = tuple(int(d) for d in stream.shape)
                    self._out_frame[spec.vstream] = (shape, np.dtype(np.float32))
                else:
                    self._out_frame[spec.vstream] = self._set_format(stream, spec, "output")
        except HailoOrtError:
            raise
        except Exception as exc:
            raise ctx.error("setting up the HEF's streams", exc) from exc
        self._model = model
        self._submit_lock = threading.RLock()
        self._state_lock = threading.Lock()
        self._generation = 0
        self._broken_generation: int | None = None
        self._configured: Any = None
        self._queue_size = max(1, batch_size)
        self._pool: list[tuple[int, dict[str, np.ndarray]]] = []  # (frames, output set)
        self._pool_lock = threading.Lock()
        self._in_flight: set[_Request] = set()
        self._configure()

    def _set_format(
        self, stream: Any, spec: StreamSpec, kind: str
    ) -> tuple[tuple[int, ...], np.dtype]:
        """Set an InferModel stream's format from ``spec``; its checked frame shape and dtype."""
        hp = self._ctx.hp
        ftype, order = self._format_names(spec, kind)
        stream.set_format_type(_enum(hp.FormatType, ftype, self.where, "format type"))
        stream.set_format_order(_enum(hp.FormatOrder, order, self.where, "format order"))
        shape = tuple(int(d) for d in stream.shape)
        self._check_frame_shape(spec, shape, kind)
        return shape, np.dtype(_NUMPY_OF_FORMAT[ftype])

    # -- configuration ------------------------------------------------------------------------

    def _configure(self) -> None:
        """Configure the InferModel (again); called with the submit lock held or at load."""
        try:
            configured = self._model.configure()
        except Exception as exc:
            raise self._ctx.error("configuring the HEF on the device", exc) from exc
        try:
            queue_size = int(configured.get_async_queue_size())
        except Exception:
            queue_size = self.batch_size
        self._configured = configured
        self._queue_size = max(1, queue_size)
        self._generation += 1
        self._broken_generation = None

    def _reset_if_broken(self) -> None:
        if self._configured is not None and self._broken_generation != self._generation:
            return
        old, self._configured = self._configured, None
        if old is not None:
            try:
                old.shutdown()
            except Exception as exc:
                log.debug("%s: shutdown of the failed configuration: %s", self.where, exc)
        self._configure()

    def _mark_broken(self, generation: int) -> None:
        # HailoRT shuts the pipeline down after a failed job: reconfigure before the next one.
        self._broken_generation = generation

    # -- output buffers ------------------------------------------------------------------------

    def _new_output_set(self, frames: int) -> dict[str, np.ndarray]:
        return {
            name: _aligned_empty((frames, *shape), dtype)
            for name, (shape, dtype) in self._out_frame.items()
        }

    def _take_output_set(self, frames: int) -> dict[str, np.ndarray]:
        """A pooled output set for ``frames`` that nobody references any more, or a new one."""
        if self.reuse_outputs:
            with self._pool_lock:
                for i, (n, outputs) in enumerate(self._pool):
                    if n == frames and _max_refcount(outputs) <= _POOL_ONLY_REFCOUNT:
                        del self._pool[i]
                        return outputs
        return self._new_output_set(frames)

    def _give_output_set(self, frames: int, outputs: dict[str, np.ndarray]) -> None:
        """Keep a completed request's set for reuse once the caller has dropped its arrays."""
        if self.reuse_outputs:
            with self._pool_lock:
                self._pool.append((frames, outputs))
                if len(self._pool) > _POOL_LIMIT:
                    del self._pool[0]

    # -- running -------------------------------------------------------------------------------

    def _submit(
        self,
        arrays: dict[str, np.ndarray],
        frames: int,
        request: _Request,
        deadline: float,
        timeout_ms: int,
    ) -> list[Any]:
        """Bind each frame and launch the jobs; returns them. Errors finish ``request``."""
        outputs = request.outputs
        assert outputs is not None
        with self._submit_lock:
            if self._closed:
                raise DeviceError(f"{self.where}: the partition is closed")
            self._reset_if_broken()
            configured, generation = self._configured, self._generation
            request.generation = generation
            request.pending = -(-frames // self._queue_size)
            with self._state_lock:
                self._in_flight.add(request)
            jobs: list[Any] = []
            action = "binding buffers"
            try:
                bindings = []
                for i in range(frames):
                    binding = configured.create_bindings(
                        output_buffers={name: out[i] for name, out in outputs.items()}
                    )
                    for name, array in arrays.items():
                        binding.input(name).set_buffer(array[i])
                    bindings.append(binding)
                callback = _chunk_callback(request, self._ctx)
                for start in range(0, frames, self._queue_size):
                    chunk = bindings[start : start + self._queue_size]
                    action = "waiting for the device queue (wait_for_async_ready)"
                    configured.wait_for_async_ready(_remaining_ms(deadline), len(chunk))
                    action = "starting inference (run_async)"
                    jobs.append(configured.run_async(chunk, callback))
            except Exception as exc:
                # The device queue staying full before anything of this request was launched is
                # back-pressure, not a fault: keep the configuration (its stuck jobs, if any,
                # time out on their own and trigger the reset).
                if (
                    not jobs
                    and action.startswith("waiting")
                    and hailort_status(exc) == "HAILO_TIMEOUT"
                ):
                    request.reset_needed = False
                else:
                    self._mark_broken(generation)
                request.finish(self._ctx.error(action, exc, timeout_ms=timeout_ms))
        return jobs

    def _request_done(self, frames: int) -> Callable[[_Request, bool], None]:
        def done(request: _Request, ok: bool) -> None:
            with self._state_lock:
                self._in_flight.discard(request)
            if not ok and request.reset_needed:
                self._mark_broken(request.generation)
            elif request.outputs is not None:
                self._give_output_set(frames, request.outputs)

        return done

    def infer(self, inputs: dict[str, np.ndarray], timeout_ms: int) -> DeviceOutputs:
        """Run the frames of ``inputs`` (batch first) and wait for them at most ``timeout_ms``.

        The returned arrays are page-aligned buffers that belong to the caller; once it drops
        them (and any views of them) they are reused by a later call.
        """
        arrays, frames = self._checked_inputs(inputs)
        timeout_ms = _positive_timeout(timeout_ms, self.where)
        deadline = time.monotonic() + timeout_ms / 1000.0
        result: dict[str, Any] = {}

        def on_complete(outputs: DeviceOutputs | None, error: BaseException | None) -> None:
            result["outputs"], result["error"] = outputs, error

        request = _Request(on_complete, self._take_output_set(frames), self._request_done(frames))
        jobs = self._submit(arrays, frames, request, deadline, timeout_ms)
        try:
            for job in jobs:
                job.wait(_remaining_ms(deadline))
        except Exception as exc:
            request.finish(self._ctx.error("inference", exc, timeout_ms=timeout_ms))
        if not request.done:  # jobs returned but the completion callback never ran
            request.finish(
                DeviceError(
                    f"{self.where}: inference timed out after {timeout_ms} ms (HAILO_TIMEOUT)"
                )
            )
        error = result.get("error")
        if error is not None:
            raise error
        return dict(result["outputs"])

    def infer_async(
        self,
        inputs: dict[str, np.ndarray],
        callback: Callable[[DeviceOutputs | None, BaseException | None], None],
        timeout_ms: int,
    ) -> None:
        """Start the frames of ``inputs``; ``callback(outputs, error)`` runs exactly once, on a
        HailoRT thread (or the timeout watchdog): keep it short and do not wait on this
        partition from it. ``outputs`` belong to the caller, as with :meth:`infer`."""
        try:
            arrays, frames = self._checked_inputs(inputs)
            timeout_ms = _positive_timeout(timeout_ms, self.where)
        except BaseException as exc:
            callback(None, exc)
            return
        deadline = time.monotonic() + timeout_ms / 1000.0
        request = _Request(callback, self._take_output_set(frames), self._request_done(frames))
        _WATCHDOG.schedule(
            deadline,
            lambda: request.finish(
                DeviceError(
                    f"{self.where}: inference timed out after {timeout_ms} ms (HAILO_TIMEOUT)"
                )
            ),
        )
        try:
            self._submit(arrays, frames, request, deadline, timeout_ms)
        except BaseException as exc:
            request.finish(exc)

    def _release(self) -> None:
        with self._submit_lock:
            configured, self._configured = self._configured, None
        with self._state_lock:
            pending = list(self._in_flight)
        if configured is not None:
            try:
                configured.shutdown()
            except Exception as exc:
                log.debug("%s: shutdown: %s", self.where, exc)
        for request in pending:  # shutdown aborts their jobs; make sure each callback ran
            request.finish(DeviceError(f"{self.where}: the partition was closed (aborted)"))
        self._model = None
        with self._pool_lock:
            self._pool.clear()


def _chunk_callback(request: _Request, ctx: _LoadContext) -> Callable[..., None]:
    """The ``run_async`` callback of one chunk of a request (HailoRT passes ``completion_info``)."""

    def callback(completion_info: Any = None, **_: Any) -> None:
        error = getattr(completion_info, "exception", None)
        request.chunk_done(None if error is None else ctx.error("inference", error))

    return callback


def _positive_timeout(timeout_ms: Any, where: str) -> int:
    try:
        value = int(timeout_ms)
    except (TypeError, ValueError):
        value = 0
    if value <= 0:
        raise DeviceError(
            f"{where}: timeout_ms must be a positive number of ms, got {timeout_ms!r}"
        )
    return value


def _remaining_ms(deadline: float) -> int:
    return max(1, int((deadline - time.monotonic()) * 1000))


# --------------------------------------------------------------------------------------------
# Legacy API: InferVStreams (HailoRT < 4.18)


class _VStreamsPartition(_HailoRTPartition):
    """A partition on ConfigureParams + InferVStreams; one worker thread bounds each call."""

    def __init__(
        self, device: HailoRTDevice, compiled: CompiledPartition, batch_size: int, ctx: _LoadContext
    ) -> None:
        super().__init__(device, compiled, batch_size, ctx)
        hp = ctx.hp
        try:
            hef = hp.HEF(ctx.hef)
            interface = hp.HailoStreamInterface.PCIe
            get_interface = getattr(ctx.vdevice, "get_default_streams_interface", None)
            if callable(get_interface):
                interface = get_interface()
            params = hp.ConfigureParams.create_from_hef(hef, interface=interface)
            if batch_size > 1:
                for group_params in params.values():
                    group_params.batch_size = batch_size
            groups = ctx.vdevice.configure(hef, params)
        except Exception as exc:
            raise ctx.error("configuring the HEF on the device", exc) from exc
        if len(groups) != 1:
            raise DeviceError(f"{self.where}: the HEF has {len(groups)} network groups, expected 1")
        self._group = groups[0]
        self._hef = hef
        try:
            in_infos = {i.name: i for i in hef.get_input_vstream_infos()}
            out_infos = {i.name: i for i in hef.get_output_vstream_infos()}
        except Exception as exc:
            raise ctx.error("reading the HEF's vstreams", exc) from exc
        self._check_names("input", list(in_infos), self.inputs)
        self._check_names("output", list(out_infos), self.outputs)
        self._in_params = self._make_params(hp.InputVStreamParams, self.inputs, in_infos, "input")
        self._out_params = self._make_params(
            hp.OutputVStreamParams, self.outputs, out_infos, "output"
        )
        self._lock = threading.Lock()
        self._pipeline: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._open_pipeline()

    def _make_params(
        self, factory: Any, specs: Sequence[StreamSpec], infos: dict[str, Any], kind: str
    ) -> dict[str, Any]:
        hp = self._ctx.hp
        try:
            params = factory.make(
                self._group, format_type=hp.FormatType.AUTO, timeout_ms=LEGACY_VSTREAM_TIMEOUT_MS
            )
        except Exception as exc:
            raise self._ctx.error(f"making {kind} vstream params", exc) from exc
        frames = self._in_frame if kind == "input" else self._out_frame
        nms = getattr(
            hp.FormatOrder, "HAILO_NMS_BY_CLASS", getattr(hp.FormatOrder, "HAILO_NMS", None)
        )
        for spec in specs:
            info = infos[spec.vstream]
            if nms is not None and getattr(info.format, "order", None) == nms:
                raise DeviceError(
                    f"{self.where}: output {spec.vstream!r} is an NMS output; NMS outputs need "
                    "HailoRT 4.18 or newer (the async API)"
                )
            ftype, order = self._format_names(spec, kind)
            fmt = params[spec.vstream].user_buffer_format
            fmt.type = getattr(hp.FormatType, ftype)
            fmt.order = getattr(hp.FormatOrder, order)
            params[spec.vstream].user_buffer_format = fmt
            shape = _vstream_frame_shape(info.shape, order)
            self._check_frame_shape(spec, shape, kind)
            frames[spec.vstream] = (shape, np.dtype(_NUMPY_OF_FORMAT[ftype]))
        return params

    def _open_pipeline(self) -> None:
        hp = self._ctx.hp
        try:
            pipeline = hp.InferVStreams(self._group, self._in_params, self._out_params)
            pipeline.__enter__()
        except Exception as exc:
            raise self._ctx.error("creating the vstreams (InferVStreams)", exc) from exc
        self._pipeline = pipeline
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="hailo-ort-vstreams")

    def _close_pipeline(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        executor, self._executor = self._executor, None
        if pipeline is not None:
            try:
                pipeline.__exit__(None, None, None)
            except Exception as exc:
                log.debug("%s: closing the vstreams: %s", self.where, exc)
        if executor is not None:
            executor.shutdown(wait=False)

    def infer(self, inputs: dict[str, np.ndarray], timeout_ms: int) -> DeviceOutputs:
        """Run the frames of ``inputs`` (batch first) through the vstreams, at most ``timeout_ms``."""
        arrays, frames = self._checked_inputs(inputs)
        timeout_ms = _positive_timeout(timeout_ms, self.where)
        with self._lock:
            if self._closed:
                raise DeviceError(f"{self.where}: the partition is closed")
            if self._pipeline is None:
                self._open_pipeline()
            pipeline, executor = self._pipeline, self._executor
            assert executor is not None
            future = executor.submit(pipeline.infer, arrays)
            try:
                results = future.result(timeout=timeout_ms / 1000.0)
            except FutureTimeoutError:
                self._close_pipeline()  # aborts the stuck vstreams; reopened on the next call
                raise DeviceError(
                    f"{self.where}: inference timed out after {timeout_ms} ms (HAILO_TIMEOUT)"
                ) from None
            except Exception as exc:
                self._close_pipeline()
                raise self._ctx.error("inference", exc, timeout_ms=timeout_ms) from exc
        outputs: DeviceOutputs = {}
        for name, (shape, dtype) in self._out_frame.items():
            array = np.asarray(results[name])
            if array.dtype != dtype or tuple(array.shape) != (frames, *shape):
                raise DeviceError(
                    f"{self.where}: HailoRT returned output {name!r} as {array.dtype} "
                    f"{list(array.shape)}, expected {dtype} {[frames, *shape]}"
                )
            outputs[name] = array
        return outputs

    def _release(self) -> None:
        with self._lock:
            self._close_pipeline()
        self._group = None


def _vstream_frame_shape(shape: Sequence[int], order: str) -> tuple[int, ...]:
    """A vstream info's (H, W, C) shape as a host frame in ``order``."""
    dims = tuple(int(d) for d in shape)
    if order == "NC":
        return (int(np.prod(dims)),) if dims else dims
    if order == "NHW" and len(dims) == 3:
        return dims[:2]
    return dims
