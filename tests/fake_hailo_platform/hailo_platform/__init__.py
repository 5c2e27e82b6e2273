"""A fake ``hailo_platform`` (HailoRT's Python API) for tests: no device, deterministic outputs.

It mirrors the names, signatures, enum values, exception classes and error texts of the real
package for the parts hailo-ort drives (HailoRT 4.x/5.x): ``VDevice`` and its params, ``Device``
(``scan``, ``control.identify``), ``HEF``, the async InferModel API and the legacy
ConfigureParams / InferVStreams API. Tests load it under the name ``hailo_platform`` through
``sys.modules`` only (see tests/test_hailort_device.py); it never stands in for library code.

Knobs for tests live in :data:`STATE` (device ids and arch, fault injection, records of what the
caller configured) and :func:`fake_set_version` (below 4.18 the VDevice has no
``create_infer_model``, as in real HailoRT). HEF metadata comes from a table of the real fixture
HEFs (facts from ../shared/fixtures/README.md), from hailo-ort's own HEF reader
(``hailo_ort.hef.read``) when it is importable, or from :func:`make_fake_hef` bytes.

Outputs: every output frame is :func:`fake_output` of the output name and the bytes of that
frame's inputs, so a test can check that data really flowed and frames were not mixed up.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import warnings
import zlib
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

__version__ = "4.20.0"

# ------------------------------------------------------------------------------------------
# Enums, with HailoRT's values (hailort.h)


class FormatType(IntEnum):
    AUTO = 0
    UINT8 = 1
    UINT16 = 2
    FLOAT32 = 3


class FormatOrder(IntEnum):
    AUTO = 0
    NHWC = 1
    NHCW = 2
    FCR = 3
    F8CR = 4
    NHW = 5
    NC = 6
    BAYER_RGB = 7
    HAILO_NMS = 9
    RGB888 = 10
    NCHW = 11
    YUY2 = 12
    NV12 = 13
    NV21 = 14
    HAILO_YYUV = 15
    HAILO_YYVU = 16
    RGB4 = 17
    I420 = 18
    HAILO_YYYYUV = 19
    HAILO_NMS_WITH_BYTE_MASK = 20
    HAILO_NMS_ON_CHIP = 21
    HAILO_NMS_BY_CLASS = 22
    HAILO_NMS_BY_SCORE = 23


class HailoSchedulingAlgorithm(IntEnum):
    NONE = 0
    ROUND_ROBIN = 1


class HailoStreamInterface(IntEnum):
    PCIe = 0
    INTEGRATED = 1
    ETH = 2
    MIPI = 3


class DeviceArchitectureTypes(IntEnum):
    HAILO8_A0 = 0
    HAILO8 = 1
    HAILO8L = 2
    HAILO15H = 3
    HAILO15L = 4
    HAILO15M = 5
    HAILO10H = 6

    def __str__(self) -> str:
        return self.name


# ------------------------------------------------------------------------------------------
# Exceptions: the real class names and texts (pyhailort.py ExceptionWrapper)


class HailoRTException(Exception):
    pass


class HailoRTTimeout(HailoRTException):
    pass


class HailoRTStreamAborted(HailoRTException):
    pass


class HailoRTInvalidOperationException(HailoRTException):
    pass


class HailoRTInvalidArgumentException(HailoRTException):
    pass


class HailoRTNotFoundException(HailoRTException):
    pass


class HailoRTInvalidHEFException(HailoRTException):
    pass


class HailoRTHEFNotCompatibleWithDevice(HailoRTException):
    pass


_STATUS_CODES = {
    "HAILO_INVALID_ARGUMENT": 2,
    "HAILO_TIMEOUT": 4,
    "HAILO_INVALID_OPERATION": 6,
    "HAILO_INTERNAL_FAILURE": 8,
    "HAILO_INVALID_HEF": 26,
    "HAILO_NOT_FOUND": 61,
    "HAILO_STREAM_ABORT": 63,
    "HAILO_OUT_OF_PHYSICAL_DEVICES": 74,
    "HAILO_HEF_NOT_SUPPORTED": 92,
    "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE": 93,
}


def status_exception(status: str) -> HailoRTException:
    """The exception the real ExceptionWrapper raises for a HailoRT status."""
    if status == "HAILO_TIMEOUT":
        return HailoRTTimeout(
            "Received a timeout - hailort has failed because a timeout had occurred"
        )
    if status == "HAILO_STREAM_ABORT":
        return HailoRTStreamAborted("Stream was aborted")
    if status == "HAILO_INVALID_OPERATION":
        return HailoRTInvalidOperationException(
            "Invalid operation. See hailort.log for more information"
        )
    if status == "HAILO_INVALID_ARGUMENT":
        return HailoRTInvalidArgumentException(
            "Invalid argument. See hailort.log for more information"
        )
    if status == "HAILO_NOT_FOUND":
        return HailoRTNotFoundException("Item not found. See hailort.log for more information")
    if status == "HAILO_INVALID_HEF":
        return HailoRTInvalidHEFException("Invalid HEF. See hailort.log for more information")
    if status == "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE":
        return HailoRTHEFNotCompatibleWithDevice(
            "HEF file is not compatible with device. See hailort.log for more information"
        )
    return HailoRTException(
        f"libhailort failed with error: {_STATUS_CODES.get(status, 8)} ({status})"
    )


# ------------------------------------------------------------------------------------------
# State and fault injection


class FakeState:
    """What the fake device is and does; reset by :func:`fake_reset`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.device_ids: list[str] = ["0000:01:00.0"]
        self.arch = "HAILO8"  # a DeviceArchitectureTypes name
        self.vdevices_created: list[dict[str, Any]] = []
        self.live_vdevices: list[Any] = []
        self.jobs_started = 0  # run_async calls / InferVStreams.infer calls, 1-based numbering
        self.fail_jobs: set[int] = set()
        self.fail_status = "HAILO_INTERNAL_FAILURE"
        self.hang_jobs: set[int] = set()
        self.configure_failures = 0  # the next N configure() calls fail
        self.configure_calls = 0
        self.shutdowns = 0
        self.queue_size = 4
        self.job_delay_s = 0.0
        self.formats_set: list[tuple[str, str, int]] = []  # (stream, "type"|"order", value)
        self.vstream_params_calls: list[dict[str, Any]] = []
        self.frames_run = 0


STATE = FakeState()


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def fake_set_version(version: str) -> None:
    """Pretend to be HailoRT ``version``: below 4.18 there is no async InferModel API."""
    global __version__, VDevice
    __version__ = version
    VDevice = _AsyncVDevice if _version_tuple(version)[:2] >= (4, 18) else _LegacyVDevice


def fake_reset(version: str = "4.20.0") -> FakeState:
    global STATE
    STATE = FakeState()
    fake_set_version(version)
    return STATE


# ------------------------------------------------------------------------------------------
# HEF metadata


@dataclass
class FakeStream:
    """One vstream: ``shape`` is (H, W, C) ((F,) for NC); ``order`` the default host order."""

    name: str
    shape: list[int]
    order: str = "NHWC"  # NHWC | NC | HAILO_NMS_BY_CLASS
    type: str = "UINT8"
    qp_zp: float = 0.0
    qp_scale: float = 1.0
    limvals_min: float = 0.0
    limvals_max: float = 255.0
    nms_classes: int = 0
    nms_max_bboxes: int = 0


@dataclass
class FakeHefMeta:
    arch: str  # HEF arch name: HAILO8, HAILO8P, HAILO8R, HAILO8L, HAILO15H...
    network_group: str
    inputs: list[FakeStream]
    outputs: list[FakeStream]
    periph_in_hailort: bool = True  # PERIPH_CALCULATION_IN_HAILORT extension present

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FakeHefMeta:
        return cls(
            arch=d["arch"],
            network_group=d["network_group"],
            inputs=[FakeStream(**s) for s in d["inputs"]],
            outputs=[FakeStream(**s) for s in d["outputs"]],
            periph_in_hailort=d.get("periph_in_hailort", True),
        )


# Real fixture HEFs (sha256 of the HEF bytes) → facts from ../shared/fixtures/README.md, for when
# hailo_ort.hef.read is not available (the README does not give all of scrfd's outputs).
_KNOWN_HEFS: dict[str, FakeHefMeta] = {
    # hailo-fork/shortcut_example.onnx, embedded HEF
    "e615c1b47ce146f329d2f15689135243c4b171a026d25af8bf08aee5a1fe99dd": FakeHefMeta(
        "HAILO8P",
        "shortcut_rubinator",
        [FakeStream("shortcut_rubinator/input_layer", [24, 16, 3])],
        [FakeStream("shortcut_rubinator/shortcut1", [24, 16, 3])],
        periph_in_hailort=False,
    ),
    # hailo-fork/multiple_outputs.onnx, embedded HEF
    "00ec62a92b4ea2b1bb2015404dda56258c635e701920dec3b794af5ffd8b3905": FakeHefMeta(
        "HAILO8P",
        "conv_2_outputs",
        [FakeStream("conv_2_outputs/input_layer", [4, 4, 3], qp_scale=0.18431373, limvals_max=47)],
        [
            FakeStream("conv_2_outputs/conv1", [4, 4, 8], qp_scale=0.54509807, limvals_max=139),
            FakeStream("conv_2_outputs/shortcut1", [4, 4, 3], qp_scale=0.18431373, limvals_max=47),
        ],
        periph_in_hailort=False,
    ),
    # hef/arcface_mobilefacenet_hailo8_v1.hef
    "9771881bc4af47f2f32ade8aed6d892ff9fa8dc04bc42d0618884333c48050ce": FakeHefMeta(
        "HAILO8P",
        "arcface_mobilefacenet",
        [FakeStream("arcface_mobilefacenet/input_layer1", [112, 112, 3])],
        [
            FakeStream(
                "arcface_mobilefacenet/fc1",
                [512],
                order="NC",
                qp_zp=144,
                qp_scale=0.016738918,
                limvals_min=-2.4104042,
                limvals_max=1.8580198,
            )
        ],
    ),
}

_FAKE_MAGIC = b"FAKEHEF:"

# device arch → HEF archs it runs (HailoRT device_internal facts, written out for the fake)
_DEVICE_RUNS = {
    "HAILO8": {"HAILO8", "HAILO8P", "HAILO8R", "HAILO8L"},
    "HAILO8L": {"HAILO8L"},
    "HAILO15H": {"HAILO15H"},
    "HAILO10H": {"HAILO15H", "HAILO10H"},
}


def make_fake_hef(meta: FakeHefMeta) -> bytes:
    """Bytes that this fake's HEF() understands (not a real HEF)."""
    return _FAKE_MAGIC + json.dumps(asdict(meta), sort_keys=True).encode()


def _meta_from_reader(data: bytes) -> FakeHefMeta | None:
    """The HEF's metadata from hailo-ort's own HEF reader, when it is importable."""
    try:
        from hailo_ort.hef import read
    except ImportError:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            info = read(data)
        group = info.network_groups[0]

        def stream(v: Any) -> FakeStream:
            q = v.quant
            quant = {
                "qp_zp": float(q.zp),
                "qp_scale": float(q.scale),
                "limvals_min": float(q.limvals_min),
                "limvals_max": float(q.limvals_max),
            }
            if v.is_nms:
                return FakeStream(
                    v.name,
                    [0],
                    order="HAILO_NMS_BY_CLASS",
                    type="FLOAT32",
                    nms_classes=int(v.nms_classes),
                    nms_max_bboxes=int(v.nms_max_bboxes_per_class),
                    **quant,
                )
            h, w, c = (int(d) for d in v.shape)
            order = v.host_format_order
            shape = [c] if order == "NC" else [h, w, c]
            return FakeStream(v.name, shape, order=order, type=v.format_type, **quant)

        return FakeHefMeta(
            info.hw_arch_name,
            group.name,
            [stream(v) for v in group.inputs],
            [stream(v) for v in group.outputs],
            periph_in_hailort=not info.is_outdated,
        )
    except Exception:  # the reader refuses it: let the table / HailoRT's rules decide
        return None


def _hef_meta(data: bytes) -> FakeHefMeta:
    """Metadata of a HEF: fake bytes, else our HEF reader, else the fixture table."""
    if data.startswith(_FAKE_MAGIC):
        return FakeHefMeta.from_dict(json.loads(data[len(_FAKE_MAGIC) :]))
    meta = _meta_from_reader(data) or _KNOWN_HEFS.get(hashlib.sha256(data).hexdigest())
    if meta is not None:
        return meta
    if data[:4] == b"\x01HEF":
        raise HailoRTException("fake hailo_platform: no metadata for this HEF; use make_fake_hef")
    raise status_exception("HAILO_INVALID_HEF")


# ------------------------------------------------------------------------------------------
# Deterministic outputs


def _host_frame_shape(stream: FakeStream, order: FormatOrder) -> tuple[int, ...]:
    if stream.order == "HAILO_NMS_BY_CLASS":
        return (stream.nms_classes * (1 + 5 * stream.nms_max_bboxes),)
    if order == FormatOrder.NC:
        return (int(np.prod(stream.shape)),)
    return tuple(stream.shape)


def fake_output(
    output_name: str, frame_inputs: dict[str, np.ndarray], shape: tuple[int, ...], dtype: Any
) -> np.ndarray:
    """The fake's output frame: a fill seeded by a CRC of the output name and the input bytes.

    For float32 (NMS by class, classes packed back to back) outputs: class 0 has one box
    (0.1, 0.2, 0.6, 0.7, score from the seed), every other class none.
    """
    seed = zlib.crc32(output_name.encode())
    for name in sorted(frame_inputs):
        seed = zlib.crc32(np.ascontiguousarray(frame_inputs[name]).tobytes(), seed)
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    if dtype == np.float32:
        out = np.zeros(size, dtype=np.float32)
        if size >= 6:
            out[0] = 1.0
            out[1:6] = [0.1, 0.2, 0.6, 0.7, (seed % 1000) / 1000.0]
        return out.reshape(shape)
    top = int(np.iinfo(dtype).max) + 1
    values = (
        np.arange(size, dtype=np.uint64) * np.uint64(2654435761) + np.uint64(seed)
    ) >> np.uint64(7)
    return (values % np.uint64(top)).astype(dtype).reshape(shape)


def _numpy_type(ftype: FormatType) -> Any:
    return {
        FormatType.UINT8: np.uint8,
        FormatType.UINT16: np.uint16,
        FormatType.FLOAT32: np.float32,
    }[ftype]


# ------------------------------------------------------------------------------------------
# Device, VDevice


class _BoardInformation:
    def __init__(self, arch: str) -> None:
        self.device_architecture = DeviceArchitectureTypes[arch]
        self.board_name = "Hailo-8"


class _Control:
    def identify(self) -> _BoardInformation:
        return _BoardInformation(STATE.arch)


class Device:
    """Hailo device object (only scan and control.identify)."""

    @classmethod
    def scan(cls) -> list[str]:
        return list(STATE.device_ids)

    def __init__(self, device_id: str | None = None) -> None:
        if not STATE.device_ids:
            raise status_exception("HAILO_OUT_OF_PHYSICAL_DEVICES")
        self.device_id = device_id or STATE.device_ids[0]
        self.control = _Control()


def _same_id(a: str, b: str) -> bool:
    """HailoRT accepts PCIe ids with or without the domain ("0000:02:00.0" / "02:00.0")."""
    return a == b or a.endswith(":" + b) or b.endswith(":" + a)


@dataclass
class VDeviceParams:
    """Params of HailoRT ≥ 4.18 (``VDevice.create_params()``)."""

    device_count: int = 1
    device_ids: list[str] = field(default_factory=list)
    scheduling_algorithm: HailoSchedulingAlgorithm = HailoSchedulingAlgorithm.ROUND_ROBIN
    group_id: str = "UNIQUE"
    multi_process_service: bool = False


class LegacyVDeviceParams:
    """Params of HailoRT 4.15-4.17: default scheduler NONE, no device_ids, and a read-only
    multi_process_service that setting a scheduler turns on."""

    __slots__ = ("_scheduling", "device_count", "group_id")

    def __init__(self) -> None:
        self.device_count = 1
        self._scheduling = HailoSchedulingAlgorithm.NONE
        self.group_id = "UNIQUE"

    @property
    def scheduling_algorithm(self) -> HailoSchedulingAlgorithm:
        return self._scheduling

    @scheduling_algorithm.setter
    def scheduling_algorithm(self, value: HailoSchedulingAlgorithm) -> None:
        self._scheduling = HailoSchedulingAlgorithm(value)

    @property
    def multi_process_service(self) -> bool:
        return self._scheduling != HailoSchedulingAlgorithm.NONE

    @property
    def device_ids(self) -> list[str]:
        return []


class _LegacyVDevice:
    """VDevice of HailoRT < 4.18: configure() only."""

    def __init__(self, params: Any = None, *, device_ids: list[str] | None = None):
        params = params if params is not None else type(self).create_params()
        wanted = list(device_ids or params.device_ids or [])
        with STATE.lock:
            free = [
                d for d in STATE.device_ids if not wanted or any(_same_id(d, w) for w in wanted)
            ]
            if not free:
                raise status_exception("HAILO_OUT_OF_PHYSICAL_DEVICES")
            for live in STATE.live_vdevices:
                shared = (
                    live.params.group_id == params.group_id and params.group_id != "UNIQUE"
                ) or (live.params.multi_process_service and params.multi_process_service)
                if live.device_id == free[0] and not shared:
                    raise status_exception("HAILO_OUT_OF_PHYSICAL_DEVICES")
            self.params = params
            self.device_id = free[0]
            self.released = False
            STATE.vdevices_created.append(
                {
                    "scheduling_algorithm": params.scheduling_algorithm,
                    "group_id": params.group_id,
                    "multi_process_service": params.multi_process_service,
                    "device_ids": wanted,
                }
            )
            STATE.live_vdevices.append(self)

    @staticmethod
    def create_params() -> Any:
        return LegacyVDeviceParams()

    def release(self) -> None:
        with STATE.lock:
            if not self.released:
                self.released = True
                STATE.live_vdevices.remove(self)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *args: Any) -> bool:
        self.release()
        return False

    def get_physical_devices_ids(self) -> list[str]:
        return [self.device_id]

    def get_physical_devices(self) -> list[Device]:
        return [Device(self.device_id)]

    def _check_loadable(self, meta: FakeHefMeta) -> None:
        if self.released:
            raise status_exception("HAILO_INVALID_OPERATION")
        if meta.arch not in _DEVICE_RUNS.get(STATE.arch, {STATE.arch}):
            raise status_exception("HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE")
        with STATE.lock:
            STATE.configure_calls += 1
            if STATE.configure_failures > 0:
                STATE.configure_failures -= 1
                raise status_exception("HAILO_INTERNAL_FAILURE")

    def configure(self, hef: HEF, configure_params_by_name: dict | None = None) -> list[Any]:
        self._check_loadable(hef._meta)
        return [ConfiguredNetwork(hef)]


class _AsyncVDevice(_LegacyVDevice):
    """VDevice of HailoRT ≥ 4.18: also create_infer_model."""

    @staticmethod
    def create_params() -> Any:
        return VDeviceParams()

    def create_infer_model(self, hef_source: str | bytes, name: str = "") -> InferModel:
        hef = HEF(hef_source)
        if _version_tuple(__version__)[:2] >= (4, 21) and not hef._meta.periph_in_hailort:
            raise status_exception("HAILO_HEF_NOT_SUPPORTED")  # "this HEF is outdated"
        return InferModel(self, hef)


VDevice: Any = _AsyncVDevice


# ------------------------------------------------------------------------------------------
# HEF


class _Format:
    def __init__(self, type: FormatType, order: FormatOrder) -> None:
        self.type = type
        self.order = order


class _QuantInfo:
    def __init__(self, s: FakeStream) -> None:
        self.qp_zp, self.qp_scale = s.qp_zp, s.qp_scale
        self.limvals_min, self.limvals_max = s.limvals_min, s.limvals_max


class _VStreamInfo:
    def __init__(self, s: FakeStream, network: str) -> None:
        self.name = s.name
        self.network_name = network
        order = FormatOrder[s.order]
        self.format = _Format(FormatType.FLOAT32 if s.nms_classes else FormatType[s.type], order)
        self.shape = (s.nms_classes, 5, s.nms_max_bboxes) if s.nms_classes else tuple(s.shape)
        self.quant_info = _QuantInfo(s)


class HEF:
    def __init__(self, hef_source: str | bytes) -> None:
        if isinstance(hef_source, str):
            with open(hef_source, "rb") as f:
                hef_source = f.read()
        elif not isinstance(hef_source, bytes):
            raise ValueError("HEF() takes a path or bytes")
        self._meta = _hef_meta(hef_source)

    def get_network_group_names(self) -> list[str]:
        return [self._meta.network_group]

    def get_input_vstream_infos(self, name: str | None = None) -> list[_VStreamInfo]:
        return [_VStreamInfo(s, self._meta.network_group) for s in self._meta.inputs]

    def get_output_vstream_infos(self, name: str | None = None) -> list[_VStreamInfo]:
        return [_VStreamInfo(s, self._meta.network_group) for s in self._meta.outputs]

    def get_sorted_output_names(self, network_group_name: str | None = None) -> list[str]:
        return [s.name for s in self._meta.outputs]


# ------------------------------------------------------------------------------------------
# Async API


class InferModel:
    class InferStream:
        def __init__(self, stream: FakeStream) -> None:
            self._s = stream
            if stream.nms_classes:
                self._type, self._order = FormatType.FLOAT32, FormatOrder.HAILO_NMS_BY_CLASS
            else:
                self._type, self._order = FormatType[stream.type], FormatOrder[stream.order]

        @property
        def name(self) -> str:
            return self._s.name

        @property
        def shape(self) -> tuple[int, ...]:
            return _host_frame_shape(self._s, self._order)

        @property
        def format(self) -> _Format:
            return _Format(self._type, self._order)

        def set_format_type(self, type: FormatType) -> None:
            STATE.formats_set.append((self._s.name, "type", int(type)))
            self._type = FormatType(type)

        def set_format_order(self, order: FormatOrder) -> None:
            STATE.formats_set.append((self._s.name, "order", int(order)))
            self._order = FormatOrder(order)

        @property
        def quant_infos(self) -> list[_QuantInfo]:
            return [_QuantInfo(self._s)]

        @property
        def is_nms(self) -> bool:
            return bool(self._s.nms_classes)

    def __init__(self, vdevice: _AsyncVDevice, hef: HEF) -> None:
        self._vdevice = vdevice
        self.hef = hef
        self._inputs = {s.name: self.InferStream(s) for s in hef._meta.inputs}
        self._outputs = {s.name: self.InferStream(s) for s in hef._meta.outputs}
        self.batch_size = 0

    def set_batch_size(self, batch_size: int) -> None:
        self.batch_size = int(batch_size)

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    @property
    def inputs(self) -> list[InferStream]:
        return list(self._inputs.values())

    @property
    def outputs(self) -> list[InferStream]:
        return list(self._outputs.values())

    def _stream(self, table: dict[str, InferStream], name: str) -> InferStream:
        if name == "" and len(table) == 1:
            return next(iter(table.values()))
        if name not in table:
            raise status_exception("HAILO_NOT_FOUND")
        return table[name]

    def input(self, name: str = "") -> InferStream:
        return self._stream(self._inputs, name)

    def output(self, name: str = "") -> InferStream:
        return self._stream(self._outputs, name)

    def configure(self) -> ConfiguredInferModel:
        self._vdevice._check_loadable(self.hef._meta)
        for stream in [*self._inputs.values(), *self._outputs.values()]:
            s = stream._s
            if s.nms_classes:
                continue
            if stream._order == FormatOrder.NC and len(s.shape) == 3 and s.shape[:2] != [1, 1]:
                raise status_exception("HAILO_INVALID_ARGUMENT")
            if stream._order not in (FormatOrder.NHWC, FormatOrder.NC, FormatOrder.NHCW):
                raise status_exception("HAILO_INVALID_ARGUMENT")
        return ConfiguredInferModel(self)


class _CompletionInfo:
    def __init__(self, exception: BaseException | None) -> None:
        self._exception = exception

    @property
    def exception(self) -> BaseException | None:
        return self._exception


class AsyncInferJob:
    def __init__(self) -> None:
        self._done = threading.Event()

    def wait(self, timeout_ms: int) -> None:
        if not self._done.wait(timeout_ms / 1000.0):
            raise status_exception("HAILO_TIMEOUT")


class ConfiguredInferModel:
    class Bindings:
        class InferStream:
            def __init__(self, frame_shape: tuple[int, ...], dtype: Any) -> None:
                self._frame_shape, self._dtype = frame_shape, np.dtype(dtype)
                self._buffer: np.ndarray | None = None

            def set_buffer(self, buffer: np.ndarray) -> None:
                if not buffer.flags.c_contiguous:
                    raise HailoRTException("Buffer must be C_CONTIGUOUS")
                if buffer.dtype != self._dtype or buffer.nbytes != (
                    int(np.prod(self._frame_shape)) * self._dtype.itemsize
                ):
                    raise status_exception("HAILO_INVALID_ARGUMENT")
                self._buffer = buffer

            def get_buffer(self, tf_format: bool | None = False) -> np.ndarray | None:
                return self._buffer

        def __init__(self, model: InferModel) -> None:
            self._inputs = {
                n: self.InferStream(s.shape, _numpy_type(s._type)) for n, s in model._inputs.items()
            }
            self._outputs = {
                n: self.InferStream(s.shape, _numpy_type(s._type))
                for n, s in model._outputs.items()
            }

        def input(self, name: str = "") -> InferStream:
            if name not in self._inputs:
                raise status_exception("HAILO_NOT_FOUND")
            return self._inputs[name]

        def output(self, name: str = "") -> InferStream:
            if name not in self._outputs:
                raise status_exception("HAILO_NOT_FOUND")
            return self._outputs[name]

    def __init__(self, model: InferModel) -> None:
        self._model = model
        self._cond = threading.Condition()
        self._queue: list[tuple[int, list[Any], Any, AsyncInferJob]] = []
        self._in_flight = 0
        self._shutdown = False
        self._broken = False  # HailoRT shuts the pipeline down after a failed job
        self._worker = threading.Thread(target=self._run, daemon=True, name="fake-hailort")
        self._worker.start()

    def create_bindings(self, input_buffers=None, output_buffers=None) -> Bindings:
        bindings = self.Bindings(self._model)
        for name, buffer in (input_buffers or {}).items():
            bindings.input(name).set_buffer(buffer)
        for name, buffer in (output_buffers or {}).items():
            bindings.output(name).set_buffer(buffer)
        return bindings

    def get_async_queue_size(self) -> int:
        return STATE.queue_size

    def wait_for_async_ready(self, timeout_ms: int = 1000, frames_count: int = 1) -> None:
        deadline = time.monotonic() + timeout_ms / 1000.0
        with self._cond:
            while True:
                if self._shutdown or self._broken:
                    raise status_exception("HAILO_STREAM_ABORT")
                if self._in_flight + frames_count <= STATE.queue_size:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise status_exception("HAILO_TIMEOUT")
                self._cond.wait(remaining)

    def run_async(self, bindings: list[Any], callback: Any = None) -> AsyncInferJob:
        for b in bindings:
            for stream in [*b._inputs.values(), *b._outputs.values()]:
                if stream._buffer is None:
                    raise status_exception("HAILO_INVALID_OPERATION")
        with self._cond:
            if self._shutdown or self._broken:
                raise status_exception("HAILO_STREAM_ABORT")
            with STATE.lock:
                STATE.jobs_started += 1
                number = STATE.jobs_started
            job = AsyncInferJob()
            self._in_flight += len(bindings)
            self._queue.append((number, list(bindings), callback, job))
            self._cond.notify_all()
        return job

    def run(self, bindings: list[Any], timeout: int) -> None:
        self.run_async(bindings).wait(timeout)

    def _finish(self, bindings, callback, job, error: BaseException | None) -> None:
        if callback is not None:
            callback(completion_info=_CompletionInfo(error))
        with self._cond:
            self._in_flight -= len(bindings)
            self._cond.notify_all()
        job._done.set()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._shutdown:
                    self._cond.wait()
                if not self._queue:
                    return
                entry = self._queue.pop(0)
                aborted = self._shutdown or self._broken
            self._process(entry, aborted)
            entry = None  # like HailoRT's buffer guards: drop the buffers once the job is done

    def _process(self, entry: tuple[int, list[Any], Any, AsyncInferJob], aborted: bool) -> None:
        number, bindings, callback, job = entry
        if aborted:
            self._finish(bindings, callback, job, status_exception("HAILO_STREAM_ABORT"))
            return
        if number in STATE.hang_jobs:
            with self._cond:
                while not self._shutdown:
                    self._cond.wait()
            self._finish(bindings, callback, job, status_exception("HAILO_STREAM_ABORT"))
            return
        if number in STATE.fail_jobs:
            with self._cond:
                self._broken = True
            self._finish(bindings, callback, job, status_exception(STATE.fail_status))
            return
        if STATE.job_delay_s:
            time.sleep(STATE.job_delay_s)
        for b in bindings:
            frame = {n: s._buffer for n, s in b._inputs.items()}
            for name, stream in b._outputs.items():
                value = fake_output(name, frame, stream._frame_shape, stream._dtype)
                np.copyto(stream._buffer, value.reshape(stream._buffer.shape))
        with STATE.lock:
            STATE.frames_run += len(bindings)
        self._finish(bindings, callback, job, None)

    def shutdown(self) -> None:
        with self._cond:
            if self._shutdown:
                return
            self._shutdown = True
            self._cond.notify_all()
        with STATE.lock:
            STATE.shutdowns += 1
        self._worker.join(5.0)

    def __enter__(self) -> ConfiguredInferModel:
        return self

    def __exit__(self, *args: Any) -> None:
        self.shutdown()


# ------------------------------------------------------------------------------------------
# Legacy API


class ConfigureParams:
    class _NetworkGroupParams:
        def __init__(self) -> None:
            self.batch_size = 0

    @staticmethod
    def create_from_hef(hef: HEF, interface: HailoStreamInterface) -> dict[str, Any]:
        HailoStreamInterface(interface)
        return {
            name: ConfigureParams._NetworkGroupParams() for name in hef.get_network_group_names()
        }


class ConfiguredNetwork:
    def __init__(self, hef: HEF) -> None:
        self._hef = hef
        self.name = hef._meta.network_group

    def get_input_vstream_infos(self) -> list[_VStreamInfo]:
        return self._hef.get_input_vstream_infos()

    def get_output_vstream_infos(self) -> list[_VStreamInfo]:
        return self._hef.get_output_vstream_infos()


class _VStreamParams:
    def __init__(self, fmt: _Format, timeout_ms: int, queue_size: int) -> None:
        self.user_buffer_format = fmt
        self.timeout_ms = timeout_ms
        self.queue_size = queue_size


def _make_vstream_params(kind: str, configured_network: ConfiguredNetwork, **kwargs: Any):
    STATE.vstream_params_calls.append({"kind": kind, **kwargs})
    infos = (
        configured_network.get_input_vstream_infos()
        if kind == "input"
        else configured_network.get_output_vstream_infos()
    )
    format_type = kwargs.get("format_type") or FormatType.AUTO
    return {
        i.name: _VStreamParams(
            _Format(format_type, FormatOrder.AUTO),
            kwargs.get("timeout_ms") or 10000,
            kwargs.get("queue_size") or 2,
        )
        for i in infos
    }


class InputVStreamParams:
    @staticmethod
    def make(
        configured_network,
        quantized=None,
        format_type=None,
        timeout_ms=None,
        queue_size=None,
        network_name=None,
    ):
        return _make_vstream_params(
            "input",
            configured_network,
            quantized=quantized,
            format_type=format_type,
            timeout_ms=timeout_ms,
            queue_size=queue_size,
        )


class OutputVStreamParams:
    @staticmethod
    def make(
        configured_network,
        quantized=None,
        format_type=None,
        timeout_ms=None,
        queue_size=None,
        network_name=None,
    ):
        return _make_vstream_params(
            "output",
            configured_network,
            quantized=quantized,
            format_type=format_type,
            timeout_ms=timeout_ms,
            queue_size=queue_size,
        )


class InferVStreams:
    def __init__(
        self,
        configured_net_group,
        input_vstreams_params,
        output_vstreams_params,
        tf_nms_format=False,
    ):
        self._ng = configured_net_group
        self._in = input_vstreams_params
        self._out = output_vstreams_params
        self._closed = threading.Event()

    def __enter__(self) -> InferVStreams:
        return self

    def __exit__(self, *args: Any) -> bool:
        self._closed.set()
        return False

    @staticmethod
    def _resolve(stream: FakeStream, fmt: _Format) -> tuple[tuple[int, ...], Any]:
        ftype = FormatType[stream.type] if fmt.type == FormatType.AUTO else FormatType(fmt.type)
        order = (
            FormatOrder[stream.order] if fmt.order == FormatOrder.AUTO else FormatOrder(fmt.order)
        )
        return _host_frame_shape(stream, order), _numpy_type(ftype)

    def infer(self, input_data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        meta = self._ng._hef._meta
        with STATE.lock:
            STATE.jobs_started += 1
            number = STATE.jobs_started
        frames = None
        for s in meta.inputs:
            shape, dtype = self._resolve(s, self._in[s.name].user_buffer_format)
            data = input_data[s.name]
            if data.dtype != dtype or tuple(data.shape[1:]) != shape:
                raise HailoRTException(
                    f"Input {s.name} has wrong dtype/shape {data.dtype} {data.shape}"
                )
            frames = data.shape[0]
        if number in STATE.hang_jobs:
            timeout = min(p.timeout_ms for p in self._out.values()) / 1000.0
            self._closed.wait(timeout)
            raise status_exception(
                "HAILO_STREAM_ABORT" if self._closed.is_set() else "HAILO_TIMEOUT"
            )
        if number in STATE.fail_jobs:
            raise status_exception(STATE.fail_status)
        results = {}
        for s in meta.outputs:
            shape, dtype = self._resolve(s, self._out[s.name].user_buffer_format)
            results[s.name] = np.stack(
                [
                    fake_output(s.name, {n: input_data[n][i] for n in input_data}, shape, dtype)
                    for i in range(frames)
                ]
            )
        with STATE.lock:
            STATE.frames_run += frames
        return results


__all__ = [
    "HEF",
    "ConfigureParams",
    "Device",
    "FormatOrder",
    "FormatType",
    "HailoRTException",
    "HailoSchedulingAlgorithm",
    "HailoStreamInterface",
    "InferVStreams",
    "InputVStreamParams",
    "OutputVStreamParams",
    "VDevice",
]
