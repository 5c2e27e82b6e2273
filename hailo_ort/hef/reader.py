"""Read HEF files (Hailo Executable Format): header v0–v3, checksums, and the protobuf body.

``read(path_or_bytes) -> Hef`` gives what a host needs to drive a HEF without HailoRT: the target
arch, SDK version, extensions, network groups with their boundary (host) streams, their shapes,
formats and quantization, and the net-flow post-processing ops (NMS). See docs/hef.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import stat
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from ..archs import check_hef_compatible, hef_arch_name, hef_runs_on
from ..errors import HefError
from ..quant import QuantInfo
from .schema import NMS_META_ARCH_FIELDS, parse_hef_proto

HEF_MAGIC = 0x01484546  # bytes 01 'H' 'E' 'F'
PERIPH_EXTENSION = "PERIPH_CALCULATION_IN_HAILORT"
_PERIPH_EXTENSION_INDEX = 26

# Edge-layer ``format`` (device order) codes → names.
DEVICE_FORMAT_ORDERS: dict[int, str] = {
    0: "NHWC",
    1: "NHCW",
    2: "NC",
    3: "FCR",
    5: "NHW",
    6: "HAILO_NMS",
    7: "F8CR",
    13: "NHWC",
}
# Default host-side order HailoRT uses for a device order (what ``hailortcli parse-hef`` prints).
_HOST_FORMAT_ORDERS = {
    "NHWC": "NHWC",
    "NHCW": "NHWC",
    "FCR": "NHWC",
    "F8CR": "NHWC",
    "NC": "NC",
    "NHW": "NHW",
    "HAILO_NMS": "HAILO_NMS_BY_CLASS",
}
_DATA_BYTES_TYPES = {1: "UINT8", 2: "UINT16"}
_PLANES_FORMATS = {0: "NV12", 1: "NV21", 2: "I420"}
_LOGITS_TYPES = {0: "argmax", 1: "softmax"}

_BOUNDARY = 0
_HOST_TO_DEVICE, _DEVICE_TO_HOST = 0, 1

PathOrBytes = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]


class HefWarning(UserWarning):
    """A HEF was read but has a problem a user should know about (e.g. an outdated HEF)."""


# --------------------------------------------------------------------------- public types


@dataclass
class HefHeader:
    """The fixed-size binary header in front of the protobuf body."""

    version: int
    proto_size: int
    header_size: int
    ccws_size: int = 0  # v3: including padding
    padding_size: int = 0  # v3
    additional_info_size: int = 0  # v3
    checksum_kind: str = ""  # "md5" (v0), "crc32" (v1), "xxh3_64" (v2, v3)
    checksum: str = ""  # hex digest as stored in the header

    @property
    def total_size(self) -> int:
        """The file size this header announces."""
        return self.header_size + self.proto_size + self.ccws_size + self.additional_info_size


@dataclass
class VStreamInfo:
    """A host-visible stream (HailoRT vstream) of a network group.

    ``shape`` is (height, width, features) as on the device; ``format_order`` the device order
    ("NHCW", "NHWC", "NC", ...); ``format_type`` "UINT8" / "UINT16" (FLOAT32 for net-flow NMS).
    """

    name: str
    shape: tuple[int, int, int]
    format_order: str
    format_type: str
    quant: QuantInfo = field(default_factory=QuantInfo)
    original_names: list[str] = field(default_factory=list)
    format_code: Optional[int] = None  # raw device order code (None for net-flow outputs)
    nms_classes: Optional[int] = None  # NMS outputs: number of classes
    nms_max_bboxes_per_class: Optional[int] = None

    @property
    def is_nms(self) -> bool:
        """Whether the stream carries NMS results (an NMS format order)."""
        return self.format_order.startswith("HAILO_NMS")

    @property
    def host_format_order(self) -> str:
        """The default host-side order HailoRT converts this stream to (NHCW → NHWC...)."""
        return _HOST_FORMAT_ORDERS.get(self.format_order, self.format_order)

    @property
    def dtype(self) -> str:
        """numpy dtype name of the raw device values ("uint8", "uint16", "float32")."""
        return self.format_type.lower()

    def shape_str(self) -> str:
        """The shape as ``hailortcli`` writes it after the host order, e.g. ``(112x112x3)``."""
        h, w, c = self.shape
        order = self.host_format_order
        if self.is_nms:
            return f"(classes: {self.nms_classes}, max bboxes per class: {self.nms_max_bboxes_per_class})"
        if order == "NC":
            return f"({c})"
        if order == "NHW":
            return f"({h}x{w})"
        return f"({h}x{w}x{c})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the stream description."""
        d: dict[str, Any] = {
            "name": self.name,
            "shape": list(self.shape),
            "format_order": self.format_order,
            "host_format_order": self.host_format_order,
            "format_type": self.format_type,
            "quant": self.quant.to_dict(),
            "original_names": list(self.original_names),
        }
        if self.is_nms:
            d["nms_classes"] = self.nms_classes
            d["nms_max_bboxes_per_class"] = self.nms_max_bboxes_per_class
        return d


@dataclass
class NmsParams:
    """Parameters of a net-flow NMS post-processing op."""

    meta_arch: str  # "yolov5", "yolov8", "yolox", "ssd", "iou", "yolov5_seg" or "unknown"
    classes: int
    score_threshold: float
    iou_threshold: float
    max_proposals_per_class: int
    background_removal: bool = False
    image_height: Optional[float] = None
    image_width: Optional[float] = None


@dataclass
class NetFlowOp:
    """A net-flow op of a network group: ``kind`` is "core", "nms" or "logits"."""

    name: str
    kind: str
    input_streams: list[str] = field(default_factory=list)  # core outputs it consumes
    output_name: str = ""  # the vstream it produces (NMS / logits)
    nms: Optional[NmsParams] = None
    logits_type: Optional[str] = None  # "argmax" | "softmax"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the operation."""
        d: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "input_streams": list(self.input_streams),
            "output_name": self.output_name,
        }
        if self.nms is not None:
            d["nms"] = {
                "meta_arch": self.nms.meta_arch,
                "classes": self.nms.classes,
                "score_threshold": self.nms.score_threshold,
                "iou_threshold": self.nms.iou_threshold,
                "max_proposals_per_class": self.nms.max_proposals_per_class,
                "background_removal": self.nms.background_removal,
            }
        if self.logits_type is not None:
            d["logits_type"] = self.logits_type
        return d


@dataclass
class NetworkGroupInfo:
    """One network group: its contexts and host streams (outputs in HailoRT's sorted order)."""

    name: str
    contexts: int
    sorted_output_names: list[str]
    inputs: list[VStreamInfo]
    outputs: list[VStreamInfo]
    ops: list[NetFlowOp] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    bottleneck_fps: Optional[float] = None

    @property
    def is_multi_context(self) -> bool:
        """Whether the network group needs more than one context (context switching)."""
        return self.contexts > 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the network group and its streams."""
        return {
            "name": self.name,
            "contexts": self.contexts,
            "sorted_output_names": list(self.sorted_output_names),
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
            "ops": [o.to_dict() for o in self.ops],
            "networks": list(self.networks),
        }


@dataclass
class Hef:
    """A parsed HEF. ``data`` keeps the original bytes (e.g. to hand them to HailoRT)."""

    header: HefHeader
    hw_arch: int  # HEF ``hw_arch`` enum value
    sdk_version: str
    extensions: list[str]
    optional_extensions: list[str]
    network_groups: list[NetworkGroupInfo]
    timestamp: int = 0
    checksum_verified: bool = False
    warnings: list[str] = field(default_factory=list)
    data: bytes = field(default=b"", repr=False)

    @property
    def version(self) -> int:
        """The header (file format) version, 0–3."""
        return self.header.version

    @property
    def hw_arch_name(self) -> str:
        """The arch name as HailoRT prints it, e.g. "HAILO8L"."""
        return hef_arch_name(self.hw_arch)

    def has_extension(self, name: str) -> bool:
        """Whether the HEF declares the extension ``name``."""
        return name in self.extensions

    @property
    def is_outdated(self) -> bool:
        """True when HailoRT ≥ 4.21 refuses the HEF (no PERIPH_CALCULATION_IN_HAILORT)."""
        return not self.has_extension(PERIPH_EXTENSION)

    def network_group(self, name: Optional[str] = None) -> NetworkGroupInfo:
        """The network group called ``name`` (the only/first one when ``name`` is None)."""
        if name is None:
            return self.network_groups[0]
        for ng in self.network_groups:
            if ng.name == name:
                return ng
        names = ", ".join(ng.name for ng in self.network_groups)
        raise HefError(f"HEF has no network group {name!r}; it has: {names}")

    def runs_on(self, device_arch: str) -> bool:
        """Whether this HEF can run on a device of ``device_arch`` (e.g. "HAILO8L", "hailo8")."""
        return hef_runs_on(self.hw_arch_name, device_arch)

    def check_runs_on(self, device_arch: str) -> None:
        """Raise ``ArchError`` saying what to do when this HEF cannot run on ``device_arch``."""
        check_hef_compatible(self.hw_arch_name, device_arch)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (what ``hailo-ort parse-hef --json`` prints)."""
        return {
            "version": self.version,
            "hw_arch": self.hw_arch_name,
            "hw_arch_code": self.hw_arch,
            "sdk_version": self.sdk_version,
            "extensions": list(self.extensions),
            "optional_extensions": list(self.optional_extensions),
            "checksum": {
                "kind": self.header.checksum_kind,
                "value": self.header.checksum,
                "verified": self.checksum_verified,
            },
            "sizes": {
                "file": self.header.total_size,
                "header": self.header.header_size,
                "proto": self.header.proto_size,
                "ccws": self.header.ccws_size,
                "additional_info": self.header.additional_info_size,
            },
            "network_groups": [ng.to_dict() for ng in self.network_groups],
            "warnings": list(self.warnings),
        }


# --------------------------------------------------------------------------- header

# version → (header size, struct format of the fields after magic, version, proto_size)
_HEADER_LAYOUTS = {
    0: (32, ">I16s"),  # reserved, md5
    1: (28, ">IQI"),  # crc32, ccws_size, reserved
    2: (44, ">QQQQ"),  # xxh3_64, ccws_size, reserved, reserved
    3: (56, ">QQIQQQ"),  # xxh3_64, ccws_size_with_padding, padding_size, additional_info_size, ...
}


def read_header(data: bytes | memoryview, file_size: Optional[int] = None) -> HefHeader:
    """Parse and size-check the binary header of a HEF.

    ``data`` holds the whole file, or at least its first 56 bytes when ``file_size`` (the
    length of the whole file) is given; the sizes the header announces must add up to it.
    """
    n = len(data) if file_size is None else file_size
    if len(data) < min(n, 56):
        raise ValueError("read_header needs the first 56 bytes of the file")
    if n < 12:
        raise HefError(f"not a HEF: file is {n} bytes, shorter than the 12-byte HEF preamble")
    magic, version, proto_size = struct.unpack_from(">III", data, 0)
    if magic != HEF_MAGIC:
        raise HefError(
            f"not a HEF: wrong magic 0x{magic:08x} (expected 0x{HEF_MAGIC:08x}, bytes 01 'HEF')"
        )
    if version not in _HEADER_LAYOUTS:
        raise HefError(f"unknown HEF header version {version} (this reader knows versions 0–3)")
    header_size, fmt = _HEADER_LAYOUTS[version]
    if n < header_size:
        raise HefError(
            f"truncated HEF: {n} bytes, shorter than the {header_size}-byte v{version} header"
        )
    fields = struct.unpack_from(fmt, data, 12)
    h = HefHeader(version=version, proto_size=proto_size, header_size=header_size)
    if version == 0:
        h.checksum_kind, h.checksum = "md5", fields[1].hex()
    elif version == 1:
        h.checksum_kind, h.checksum, h.ccws_size = "crc32", f"{fields[0]:08x}", fields[1]
    elif version == 2:
        h.checksum_kind, h.checksum, h.ccws_size = "xxh3_64", f"{fields[0]:016x}", fields[1]
    else:
        h.checksum_kind, h.checksum = "xxh3_64", f"{fields[0]:016x}"
        h.ccws_size, h.padding_size, h.additional_info_size = fields[1], fields[2], fields[3]
        if h.padding_size > h.ccws_size:
            raise HefError(
                f"corrupt HEF: padding size {h.padding_size} exceeds the ccws size {h.ccws_size}"
            )
    if h.total_size != n:
        parts = f"header {header_size} + proto {proto_size}"
        if version > 0:
            parts += f" + ccws {h.ccws_size}"
        if version == 3:
            parts += f" + additional info {h.additional_info_size}"
        kind = "truncated" if h.total_size > n else "corrupt"
        raise HefError(
            f"{kind} HEF: the v{version} header announces {h.total_size} bytes "
            f"({parts}) but the file has {n}"
        )
    return h


def _xxh3_64() -> Optional[Callable[[bytes], int]]:
    """An XXH3-64 function from the ``xxhash`` package or the system libxxhash, if any."""
    try:
        import xxhash  # optional

        return xxhash.xxh3_64_intdigest
    except ImportError:
        pass
    libname = ctypes.util.find_library("xxhash") or "libxxhash.so.0"
    try:
        lib = ctypes.CDLL(libname)
        fn = lib.XXH3_64bits
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_uint64
    fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return lambda b: int(fn(b, len(b)))


_XXH3_UNSET = object()
_xxh3_cache: Any = _XXH3_UNSET


def xxh3_available() -> bool:
    """Whether v2/v3 checksums can be verified here (``xxhash`` package or libxxhash)."""
    return _get_xxh3() is not None


def _get_xxh3() -> Optional[Callable[[bytes], int]]:
    global _xxh3_cache
    if _xxh3_cache is _XXH3_UNSET:
        _xxh3_cache = _xxh3_64()
    return _xxh3_cache


def _verify_checksum(h: HefHeader, data: bytes) -> bool:
    """Check the header checksum over everything after the header; False if not checkable."""
    body = memoryview(data)[h.header_size :]
    if h.checksum_kind == "md5":
        actual = hashlib.md5(body).hexdigest()
    elif h.checksum_kind == "crc32":
        actual = f"{zlib.crc32(body) & 0xFFFFFFFF:08x}"
    else:
        xxh3 = _get_xxh3()
        if xxh3 is None:
            return False
        actual = f"{xxh3(bytes(body)) & 0xFFFFFFFFFFFFFFFF:016x}"
    if actual != h.checksum:
        raise HefError(
            f"corrupt HEF: {h.checksum_kind.upper()} checksum mismatch "
            f"(header says {h.checksum}, content gives {actual})"
        )
    return True


# --------------------------------------------------------------------------- body


def _text(b: bytes) -> str:
    return bytes(b).decode("utf-8", errors="replace")


def _extension_name(ext: Any) -> str:
    """Short name of an extension: ``NAME`` from ``'Description (NAME)'``, else the text."""
    text = _text(ext.name).strip()
    if text.endswith(")") and "(" in text:
        inner = text[text.rindex("(") + 1 : -1].strip()
        if inner and " " not in inner:
            return inner
    if not text and ext.type_index == _PERIPH_EXTENSION_INDEX:
        return PERIPH_EXTENSION
    return text or f"EXTENSION_{ext.type_index}"


def _quant(numeric: Any) -> QuantInfo:
    q = QuantInfo(
        zp=float(numeric.qp_zp),
        scale=float(numeric.qp_scale),
        limvals_min=float(numeric.limvals_min),
        limvals_max=float(numeric.limvals_max),
    )
    scales = [float(v) for v in numeric.qp_scales]
    zps = [float(v) for v in numeric.qp_zps]
    # Per-feature values are kept only when they differ: uniform lists are per-tensor.
    if len(set(scales)) > 1 or len(set(zps)) > 1:
        q.scales = scales or [q.scale] * len(zps)
        q.zps = zps or [q.zp] * len(q.scales)
    return q


def _vstream_from_layer_info(info: Any) -> VStreamInfo:
    base = info.edge_layer_base
    code = int(base.format)
    height, width = int(base.height), int(base.width)
    if info.transposed:
        height, width = width, height
    order = DEVICE_FORMAT_ORDERS.get(code, f"UNKNOWN({code})")
    vs = VStreamInfo(
        name=_text(info.name),
        shape=(height, width, int(base.features)),
        format_order=order,
        format_type=_DATA_BYTES_TYPES.get(int(base.data_bytes), f"UNKNOWN({int(base.data_bytes)})"),
        quant=_quant(info.numeric_info),
        original_names=[_text(n) for n in info.original_names],
        format_code=code,
    )
    if order == "HAILO_NMS" and base.HasField("additional_info"):
        nms = base.additional_info.nms_info
        vs.nms_classes = int(nms.number_of_classes)
        vs.nms_max_bboxes_per_class = int(nms.max_output_size)
    return vs


def _vstreams_from_edge(
    edge: Any, warn: Callable[[str], None], depth: int = 0
) -> list[VStreamInfo]:
    """VStreams of a boundary edge layer (``EdgeLayer`` or nested ``Edge``)."""
    if depth > 8:
        warn("skipped an edge layer nested more than 8 levels deep")
        return []
    if edge.HasField("layer_info"):
        return [_vstream_from_layer_info(edge.layer_info)]
    if edge.HasField("layer_mux"):
        mux = edge.layer_mux
        streams = [s for p in mux.predecessors for s in _vstreams_from_edge(p, warn, depth + 1)]
        if not streams:
            warn(f"skipped mux edge layer {_text(mux.name)!r}: it has no readable predecessors")
        return streams
    if edge.HasField("layer_planes"):
        planes = edge.layer_planes
        first = next(
            (p.layer_info for p in planes.planes if p.HasField("layer_info")),
            None,
        )
        fmt = int(planes.planes_format)
        return [
            VStreamInfo(
                name=_text(planes.name),
                shape=(int(planes.height), int(planes.width), int(planes.features)),
                format_order=_PLANES_FORMATS.get(fmt, f"UNKNOWN_PLANES({fmt})"),
                format_type="UINT8"
                if first is None
                else _DATA_BYTES_TYPES.get(int(first.edge_layer_base.data_bytes), "UINT8"),
                quant=QuantInfo() if first is None else _quant(first.numeric_info),
            )
        ]
    warn("skipped a boundary edge layer of unknown kind")
    return []


def _core_source(ng: Any) -> Any:
    """The message holding the contexts: a net-flow core op, a partial group, or the group."""
    for op in ng.ops:
        if op.HasField("core_op"):
            core = op.core_op
            if core.partial_network_groups:
                return core.partial_network_groups[0].network_group
            return core
    if ng.partial_network_groups:
        return ng.partial_network_groups[0].network_group
    return ng


def _network_group_name(ng: Any) -> str:
    if ng.partial_network_groups:
        part = ng.partial_network_groups[0].network_group
        name = _text(part.network_group_metadata.network_group_name) or _text(
            part.network_group_name
        )
        if name:
            return name
    return _text(ng.network_group_metadata.network_group_name) or _text(ng.network_group_name)


def _with_prefix(name: str, ng_name: str) -> str:
    return name if "/" in name or not ng_name else f"{ng_name}/{name}"


def _read_network_group(ng: Any, index: int, warn: Callable[[str], None]) -> NetworkGroupInfo:
    name = _network_group_name(ng) or f"network_group_{index}"
    src = _core_source(ng)

    inputs: dict[str, VStreamInfo] = {}
    outputs: dict[str, VStreamInfo] = {}
    pad_to_output: dict[int, str] = {}
    for ctx in src.contexts:
        for edge in ctx.metadata.edge_layers:
            if int(edge.context_switch_info.edge_connection_type) != _BOUNDARY:
                continue
            direction = int(edge.direction)
            if direction not in (_HOST_TO_DEVICE, _DEVICE_TO_HOST):
                warn(f"network group {name!r}: skipped an edge layer of direction {direction}")
                continue
            target = inputs if direction == _HOST_TO_DEVICE else outputs
            streams = _vstreams_from_edge(edge, lambda m: warn(f"network group {name!r}: {m}"))
            for vs in streams:
                target.setdefault(vs.name, vs)  # the same stream appears in several contexts
            if direction == _DEVICE_TO_HOST and edge.HasField("pad_index") and streams:
                pad_to_output[int(edge.pad_index)] = streams[0].name

    sorted_names = [_text(n) for n in (ng.sorted_outputs_order or src.sorted_outputs_order)]

    # Net-flow ops: NMS / logits consume core outputs and expose one output each.
    ops: list[NetFlowOp] = []
    pad_src = {int(e.dst): int(e.src) for e in ng.pad_edges}
    consumed: set[str] = set()
    extra_outputs: list[VStreamInfo] = []
    for op in ng.ops:
        op_name = _text(op.name)
        if op.HasField("core_op"):
            ops.append(NetFlowOp(name=op_name, kind="core"))
            continue
        if not (op.HasField("nms_op") or op.HasField("logits_op")):
            warn(f"network group {name!r}: skipped net-flow op {op_name!r} of unknown kind")
            continue
        in_streams = []
        for pad in op.input_pads:
            stream = pad_to_output.get(pad_src.get(int(pad.index), -1))
            if stream is not None:
                in_streams.append(stream)
        out_pad = op.output_pads[0] if op.output_pads else None
        out_name = _with_prefix(_text(out_pad.name), name) if out_pad is not None else op_name
        if op.HasField("nms_op"):
            nms = op.nms_op
            arch_field = next((f for f in NMS_META_ARCH_FIELDS if nms.HasField(f)), None)
            arch_msg = getattr(nms, arch_field) if arch_field else None
            params = NmsParams(
                meta_arch=NMS_META_ARCH_FIELDS[arch_field] if arch_field else "unknown",
                classes=int(nms.classes),
                score_threshold=float(nms.nms_score_th),
                iou_threshold=float(nms.nms_iou_th),
                max_proposals_per_class=int(nms.max_proposals_per_class),
                background_removal=bool(nms.background_removal),
                image_height=float(arch_msg.image_height) if arch_msg is not None else None,
                image_width=float(arch_msg.image_width) if arch_msg is not None else None,
            )
            ops.append(NetFlowOp(op_name, "nms", in_streams, out_name, nms=params))
            extra_outputs.append(
                VStreamInfo(
                    name=out_name,
                    shape=(0, 0, 0),
                    format_order="HAILO_NMS_BY_CLASS",
                    format_type="FLOAT32",
                    quant=QuantInfo(zp=0.0, scale=1.0, limvals_min=0.0, limvals_max=0.0),
                    nms_classes=params.classes,
                    nms_max_bboxes_per_class=params.max_proposals_per_class,
                )
            )
        else:
            kind = _LOGITS_TYPES.get(int(op.logits_op.logits_type), "unknown")
            ops.append(NetFlowOp(op_name, "logits", in_streams, out_name, logits_type=kind))
            src_stream = outputs.get(in_streams[0]) if in_streams else None
            shape = src_stream.shape if src_stream is not None else (0, 0, 0)
            if kind == "argmax":
                shape = (shape[0], shape[1], 1)
            extra_outputs.append(
                VStreamInfo(
                    name=out_name,
                    shape=shape,
                    format_order="NHWC",
                    format_type="FLOAT32" if kind == "softmax" else "UINT8",
                )
            )
        if not in_streams and op.input_pads:
            warn(
                f"network group {name!r}: net-flow op {op_name!r} is not connected to any "
                "core output; its inputs stay listed as outputs"
            )
        consumed.update(in_streams)

    order = {n: i for i, n in enumerate(sorted_names)}
    core_outputs = [vs for n, vs in outputs.items() if n not in consumed]
    core_outputs.sort(key=lambda vs: order.get(vs.name, len(order)))  # stable for the rest
    final_outputs = core_outputs + extra_outputs
    if not sorted_names or consumed:
        sorted_names = [vs.name for vs in final_outputs]

    meta = ng.network_group_metadata
    return NetworkGroupInfo(
        name=name,
        contexts=len(src.contexts),
        sorted_output_names=sorted_names,
        inputs=list(inputs.values()),
        outputs=final_outputs,
        ops=ops,
        networks=[_text(n) for n in (ng.networks_names or src.networks_names)],
        bottleneck_fps=float(meta.bottleneck_fps) if meta.HasField("bottleneck_fps") else None,
    )


# --------------------------------------------------------------------------- entry points


def _load(path_or_bytes: PathOrBytes) -> bytes:
    """The file's bytes; for a path, the header is checked against the file size first, so
    that a non-HEF (or a device such as /dev/zero) is rejected without reading it all."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes)
    path = Path(path_or_bytes)
    try:
        with path.open("rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise HefError(f"{path} is not a regular file")
            read_header(f.read(56), file_size=st.st_size)
            f.seek(0)
            return f.read()
    except FileNotFoundError:
        raise HefError(f"HEF file not found: {path}") from None
    except IsADirectoryError:
        raise HefError(f"{path} is a directory, not a HEF file") from None
    except OSError as exc:
        raise HefError(f"cannot read HEF file {path}: {exc.strerror or exc}") from None


def read(path_or_bytes: PathOrBytes, *, verify_checksum: bool = True) -> Hef:
    """Read a HEF from a path or from its bytes.

    Raises :class:`~hailo_ort.errors.HefError` for anything that is not a well-formed HEF
    (wrong magic, unknown version, size mismatch, checksum mismatch, undecodable body).
    Problems that do not stop reading (an outdated HEF, skipped stream kinds) are emitted as
    :class:`HefWarning` and listed in ``Hef.warnings``.
    """
    data = _load(path_or_bytes)
    header = read_header(data)
    verified = _verify_checksum(header, data) if verify_checksum else False

    proto_bytes = data[header.header_size : header.header_size + header.proto_size]
    try:
        msg = parse_hef_proto(proto_bytes)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeError... on garbage
        raise HefError(f"corrupt HEF: the protobuf body does not decode ({exc})") from None

    found: list[str] = []
    try:
        network_groups = [
            _read_network_group(ng, i, found.append) for i, ng in enumerate(msg.network_groups)
        ]
        extensions = [_extension_name(e) for e in msg.extensions]
        optional = [_extension_name(e) for e in msg.optional_extensions]
        hw_arch = int(msg.header.hw_arch)
        sdk = _text(msg.header.sdk_version)
        timestamp = int(msg.header.timestamp)
    except (ValueError, IndexError, KeyError, TypeError, OverflowError, RecursionError) as exc:
        raise HefError(f"corrupt HEF: inconsistent protobuf body ({exc})") from None
    if not network_groups:
        raise HefError("corrupt HEF: it contains no network group")
    for ng in network_groups:
        if not ng.inputs and not ng.outputs:
            found.append(f"network group {ng.name!r} has no boundary (host) streams")

    hef = Hef(
        header=header,
        hw_arch=hw_arch,
        sdk_version=sdk,
        extensions=extensions,
        optional_extensions=optional,
        network_groups=network_groups,
        timestamp=timestamp,
        checksum_verified=verified,
        data=data,
    )
    if hef.is_outdated:
        found.insert(
            0,
            f"outdated HEF: it lacks the {PERIPH_EXTENSION} extension (SDK "
            f"{sdk or 'unknown'}), so HailoRT 4.21 and newer refuse to load it; recompile it "
            "with a recent Dataflow Compiler",
        )
    hef.warnings = found
    for message in found:
        warnings.warn(message, HefWarning, stacklevel=2)
    return hef
