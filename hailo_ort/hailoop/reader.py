"""Read ``ai.hailo::HailoOp`` nodes: Hailo's fork models (DFC ``get_hailo_runtime_model``) and ours."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import onnx
from onnx import helper

from ..errors import HailoOpFormatError, HefError
from ..graph.subgraph import value_infos
from ..partition.types import Partition, TensorSpec
from ..quant import QuantInfo
from . import format as fmt
from ._model import ModelLike, load_model, tensor_dtype, tensor_shape
from .types import CompiledPartition, StreamSpec


@dataclass
class HailoOpNode:
    """One ``ai.hailo::HailoOp`` node of a model, as :func:`read` finds it.

    ``flavour`` is "portable" when the node carries our ``hailo_ort_*`` attributes, else "fork"
    (Hailo's schema: written by the DFC, or by :func:`embed` with ``flavour="fork"``).
    ``has_fallback`` says whether a model-local function (overload) gives the node a CPU body.
    ``hef`` is the parsed HEF (``hailo_ort.hef.Hef``), or None for emulated partitions.
    ``written_by_us`` is True when our metadata was found.
    """

    node_name: str
    node_index: int
    compiled: CompiledPartition
    has_fallback: bool
    flavour: str
    written_by_us: bool
    input_format_order: list[int]
    output_format_order: list[int]
    input_quantized: list[int]
    output_quantized: list[int]
    overload: str = ""
    hef: Any = None

    @property
    def inputs(self) -> list[str]:
        """Tensor names of the node's inputs, in order (= sorted_input_names order)."""
        return [s.tensor for s in self.compiled.inputs]

    @property
    def outputs(self) -> list[str]:
        """Tensor names of the node's outputs, in order (= sorted_output_names order)."""
        return [s.tensor for s in self.compiled.outputs]

    @property
    def vstream_map(self) -> dict[str, str]:
        """vstream name → ONNX tensor name, inputs and outputs."""
        return {s.vstream: s.tensor for s in self.compiled.inputs + self.compiled.outputs}


def is_hailo_op(node: onnx.NodeProto) -> bool:
    """Whether ``node`` is an ``ai.hailo::HailoOp`` node."""
    return node.op_type == fmt.OP_TYPE and node.domain == fmt.DOMAIN


def hailo_node_name(node: onnx.NodeProto, index: int) -> str:
    """The node's name; unnamed nodes (the DFC writes some) are called ``HailoOp_<index>``."""
    return node.name or f"{fmt.OP_TYPE}_{index}"


def is_hailo_model(model: ModelLike) -> bool:
    """Whether the model has at least one ``ai.hailo::HailoOp`` node in its main graph."""
    m = load_model(model, copy=False)
    return any(is_hailo_op(n) for n in m.graph.node)


def payload_sha256(payload: bytes) -> str:
    """The content hash stored in our metadata: sha256 hex of the HEF or emulation bytes."""
    return hashlib.sha256(payload).hexdigest()


def read(model: ModelLike) -> list[HailoOpNode]:
    """Every HailoOp node of ``model`` (path, bytes or ModelProto), in graph order.

    Raises ModelError for something that is not an ONNX model and HailoOpFormatError for a
    malformed HailoOp node (missing attributes, inconsistent lengths, corrupted payload).
    """
    m = load_model(model, copy=False)
    infos = value_infos(m)
    overloads = {f.overload for f in m.functions if (f.domain, f.name) == (fmt.DOMAIN, fmt.OP_TYPE)}
    props = {p.key: p.value for p in m.metadata_props}
    producer = " ".join(x for x in (m.producer_name, m.producer_version) if x)
    result: list[HailoOpNode] = []
    for index, node in enumerate(m.graph.node):
        if not is_hailo_op(node):
            continue
        name = hailo_node_name(node, index)
        attrs = _attributes(node, name)
        meta_text = attrs.get(fmt.ATTR_META)
        flavour = "portable" if meta_text is not None else "fork"
        if meta_text is None:
            meta_text = props.get(fmt.META_KEY_PREFIX + name)
        has_fallback = node.overload in overloads
        if meta_text is not None:
            meta = _parse_meta(meta_text, name)
            compiled, hef = _compiled_from_meta(meta, attrs, node, name)
        else:
            compiled, hef = _compiled_from_fork(attrs, node, name, len(result), infos, producer)
        result.append(
            HailoOpNode(
                node_name=name,
                node_index=index,
                compiled=compiled,
                has_fallback=has_fallback,
                flavour=flavour,
                written_by_us=meta_text is not None,
                input_format_order=list(attrs[fmt.ATTR_INPUT_ORDER]),
                output_format_order=list(attrs[fmt.ATTR_OUTPUT_ORDER]),
                input_quantized=list(attrs[fmt.ATTR_INPUT_QUANTIZED]),
                output_quantized=list(attrs[fmt.ATTR_OUTPUT_QUANTIZED]),
                overload=node.overload,
                hef=hef,
            )
        )
    return result


# --- attributes -------------------------------------------------------------------------------


def _attributes(node: onnx.NodeProto, name: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for a in node.attribute:
        attrs[a.name] = helper.get_attribute_value(a)
    missing = [a for a in fmt.FORK_ATTRIBUTES if a not in attrs]
    if missing:
        raise HailoOpFormatError(f"HailoOp node {name!r}: missing attribute(s) {missing}")
    if not isinstance(attrs[fmt.ATTR_HEF], bytes):
        raise HailoOpFormatError(f"HailoOp node {name!r}: attribute 'hef' is not a STRING")
    for key in (fmt.ATTR_SORTED_INPUTS, fmt.ATTR_SORTED_OUTPUTS):
        try:
            attrs[key] = [v.decode("utf-8") for v in attrs[key]]
        except (AttributeError, TypeError, UnicodeDecodeError) as e:
            raise HailoOpFormatError(
                f"HailoOp node {name!r}: attribute {key!r} is not a list of UTF-8 strings"
            ) from e
    for key in (
        fmt.ATTR_INPUT_ORDER,
        fmt.ATTR_OUTPUT_ORDER,
        fmt.ATTR_INPUT_QUANTIZED,
        fmt.ATTR_OUTPUT_QUANTIZED,
    ):
        value = attrs[key]
        if isinstance(value, int):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
            raise HailoOpFormatError(f"HailoOp node {name!r}: attribute {key!r} is not INTS")
        attrs[key] = value
    n_in = [i for i in node.input]
    n_out = [o for o in node.output]
    for key, tensors in (
        (fmt.ATTR_SORTED_INPUTS, n_in),
        (fmt.ATTR_INPUT_ORDER, n_in),
        (fmt.ATTR_INPUT_QUANTIZED, n_in),
        (fmt.ATTR_SORTED_OUTPUTS, n_out),
        (fmt.ATTR_OUTPUT_ORDER, n_out),
        (fmt.ATTR_OUTPUT_QUANTIZED, n_out),
    ):
        if len(attrs[key]) != len(tensors):
            raise HailoOpFormatError(
                f"HailoOp node {name!r}: {key!r} has {len(attrs[key])} entries but the node "
                f"has {len(tensors)} {'inputs' if 'input' in key else 'outputs'}"
            )
    if not n_in or not n_out or not all(n_in) or not all(n_out):
        raise HailoOpFormatError(f"HailoOp node {name!r}: needs named inputs and outputs")
    if fmt.ATTR_META in attrs:
        try:
            attrs[fmt.ATTR_META] = attrs[fmt.ATTR_META].decode("utf-8")
        except (AttributeError, UnicodeDecodeError) as e:
            raise HailoOpFormatError(
                f"HailoOp node {name!r}: {fmt.ATTR_META!r} is not a UTF-8 string"
            ) from e
    return attrs


def _parse_meta(text: str, name: str) -> dict[str, Any]:
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise HailoOpFormatError(f"HailoOp node {name!r}: metadata is not valid JSON: {e}") from e
    if not isinstance(meta, dict) or "format" not in meta:
        raise HailoOpFormatError(f"HailoOp node {name!r}: metadata has no 'format' version")
    if int(meta["format"]) > fmt.META_FORMAT_VERSION:
        raise HailoOpFormatError(
            f"HailoOp node {name!r}: metadata format {meta['format']} is newer than this "
            f"hailo-ort reads ({fmt.META_FORMAT_VERSION}); upgrade hailo-ort"
        )
    return meta


# --- our nodes ---------------------------------------------------------------------------------


def _compiled_from_meta(
    meta: dict[str, Any], attrs: dict[str, Any], node: onnx.NodeProto, name: str
) -> tuple[CompiledPartition, Any]:
    try:
        backend = str(meta["backend"])
        partition = partition_from_dict(meta["partition"])
        inputs = [StreamSpec.from_dict(d) for d in meta["inputs"]]
        outputs = [StreamSpec.from_dict(d) for d in meta["outputs"]]
    except (KeyError, TypeError, ValueError) as e:
        raise HailoOpFormatError(f"HailoOp node {name!r}: incomplete metadata ({e!r})") from e
    if [s.tensor for s in inputs] != list(node.input) or [s.tensor for s in outputs] != list(
        node.output
    ):
        raise HailoOpFormatError(
            f"HailoOp node {name!r}: metadata streams do not match the node's inputs/outputs"
        )
    if [s.vstream for s in inputs] != attrs[fmt.ATTR_SORTED_INPUTS] or [
        s.vstream for s in outputs
    ] != attrs[fmt.ATTR_SORTED_OUTPUTS]:
        raise HailoOpFormatError(
            f"HailoOp node {name!r}: metadata vstreams do not match sorted_input/output_names"
        )
    hef_bytes: bytes = attrs[fmt.ATTR_HEF]
    emulation: bytes | None = None
    if backend == "emulate":
        emulation = attrs.get(fmt.ATTR_EMULATION)
        if not isinstance(emulation, bytes) or not emulation:
            raise HailoOpFormatError(
                f"HailoOp node {name!r}: emulated partition without its "
                f"{fmt.ATTR_EMULATION!r} attribute"
            )
        payload = emulation
    else:
        if not hef_bytes:
            raise HailoOpFormatError(f"HailoOp node {name!r}: backend {backend!r} with no HEF")
        payload = hef_bytes
    want = meta.get("payload_sha256")
    if want is not None and payload_sha256(payload) != want:
        raise HailoOpFormatError(
            f"HailoOp node {name!r}: the {'emulation model' if emulation else 'HEF'} does not "
            "match its sha256 in the metadata (file corrupted or edited)"
        )
    compiled = CompiledPartition(
        partition=partition,
        arch=str(meta.get("arch", "")),
        backend=backend,
        inputs=inputs,
        outputs=outputs,
        hef=hef_bytes if backend != "emulate" else None,
        emulation=emulation,
        toolchain={str(k): str(v) for k, v in dict(meta.get("toolchain", {})).items()},
        report=dict(meta.get("report", {})),
    )
    hef = _parse_hef(hef_bytes, name) if compiled.hef else None
    return compiled, hef


def partition_from_dict(d: dict[str, Any]) -> Partition:
    """The inverse of :meth:`Partition.to_dict` (as stored in our metadata and the compile cache)."""
    return Partition(
        index=int(d["index"]),
        nodes=[str(n) for n in d["nodes"]],
        start_nodes=[str(n) for n in d.get("start_nodes", [])],
        end_nodes=[str(n) for n in d.get("end_nodes", [])],
        inputs=[
            TensorSpec(t["name"], [int(v) for v in t["shape"]], t["dtype"]) for t in d["inputs"]
        ],
        outputs=[
            TensorSpec(t["name"], [int(v) for v in t["shape"]], t["dtype"]) for t in d["outputs"]
        ],
        flops=int(d.get("flops", 0)),
        params=int(d.get("params", 0)),
    )


# --- nodes we did not write (Hailo's fork / the DFC) ------------------------------------------


def _parse_hef(data: bytes, name: str) -> Any:
    """The parsed HEF (``hailo_ort.hef.read``); an unreadable one is a HailoOpFormatError."""
    from .. import hef as hef_module

    try:
        return hef_module.read(data)
    except HefError as e:
        raise HailoOpFormatError(f"HailoOp node {name!r}: its HEF is unreadable: {e}") from e


#: HEF arch names → DFC arch names (HEF arch 103 / HAILO1XH is the Hailo-15H / 10H family).
_HEF_TO_DFC_ARCH = {
    "HAILO8": "hailo8",
    "HAILO8P": "hailo8",
    "HAILO8R": "hailo8r",
    "HAILO8L": "hailo8l",
    "HAILO15H": "hailo15h",
    "HAILO1XH": "hailo15h",
    "HAILO15M": "hailo15m",
    "HAILO15L": "hailo15l",
    "HAILO10H": "hailo10h",
}


def _vstream_infos(hef: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ng in getattr(hef, "network_groups", []):
        for vi in list(ng.inputs) + list(ng.outputs):
            out[vi.name] = vi
    return out


def _as_quant(q: Any) -> QuantInfo:
    if isinstance(q, QuantInfo):
        return q
    if q is None:
        return QuantInfo()
    if hasattr(q, "to_dict"):
        return QuantInfo.from_dict(q.to_dict())
    return QuantInfo(
        zp=float(getattr(q, "qp_zp", 0.0)),
        scale=float(getattr(q, "qp_scale", 1.0)),
        limvals_min=float(getattr(q, "limvals_min", 0.0)),
        limvals_max=float(getattr(q, "limvals_max", 255.0)),
    )


_RANK_DEFAULT_HOST_ORDER = {4: "NHWC", 3: "NHW", 2: "NC"}


def _stream_from_fork(
    tensor: str,
    vstream: str,
    order_code: int,
    infos: dict[str, onnx.ValueInfoProto],
    vinfo: Any,
) -> StreamSpec:
    vi = infos.get(tensor)
    host_shape = tensor_shape(vi) if vi is not None else None
    host_dtype = (tensor_dtype(vi) if vi is not None else None) or "float32"
    rank = len(host_shape) if host_shape is not None else 4
    host_order = fmt.format_order_name(order_code)
    if order_code == fmt.FORMAT_ORDER_CODES["AUTO"] or len(host_order) != rank:
        host_order = _RANK_DEFAULT_HOST_ORDER.get(rank, host_order)
    batch = host_shape[0] if host_shape else 1

    dims = [int(v) for v in vinfo.shape]
    h, w, c = ([1, 1, *dims] if len(dims) < 3 else dims)[-3:]
    hef_order = str(vinfo.format_order).upper().split(".")[-1]
    if hef_order == "NC":
        device_shape, device_order = [batch, c], "NC"
    elif hef_order == "NHW":
        device_shape, device_order = [batch, h, w], "NHW"
    elif hef_order in ("NHWC", "NHCW"):
        # HailoRT's default host order for NHCW (and NHWC) device streams is NHWC
        device_shape, device_order = [batch, h, w, c], "NHWC"
    else:
        device_shape, device_order = [batch, h, w, c], hef_order
    device_dtype = str(vinfo.format_type).lower().split(".")[-1]
    quant = _as_quant(getattr(vinfo, "quant", None))
    if host_shape is None:
        host_shape = _host_shape(device_shape, host_order)
    return StreamSpec(
        vstream=vstream,
        tensor=tensor,
        shape=list(host_shape),
        dtype=host_dtype,
        device_shape=device_shape,
        device_order=device_order,
        device_dtype=device_dtype,
        quant=quant,
        host_order=host_order,
    )


def _host_shape(device_shape: list[int], host_order: str) -> list[int]:
    if len(device_shape) == 4 and host_order == "NCHW":
        n, h, w, c = device_shape
        return [n, c, h, w]
    return list(device_shape)


def _compiled_from_fork(
    attrs: dict[str, Any],
    node: onnx.NodeProto,
    name: str,
    ordinal: int,
    infos: dict[str, onnx.ValueInfoProto],
    producer: str,
) -> tuple[CompiledPartition, Any]:
    hef_bytes: bytes = attrs[fmt.ATTR_HEF]
    if not hef_bytes:
        raise HailoOpFormatError(f"HailoOp node {name!r}: empty 'hef' attribute")
    hef = _parse_hef(hef_bytes, name)
    vinfos = _vstream_infos(hef)

    def stream(tensor: str, vstream: str, order: int) -> StreamSpec:
        vinfo = vinfos.get(vstream)
        if vinfo is None:
            raise HailoOpFormatError(
                f"HailoOp node {name!r}: vstream {vstream!r} is not in its HEF "
                f"(HEF vstreams: {sorted(vinfos)})"
            )
        return _stream_from_fork(tensor, vstream, order, infos, vinfo)

    inputs = [
        stream(t, v, o)
        for t, v, o in zip(node.input, attrs[fmt.ATTR_SORTED_INPUTS], attrs[fmt.ATTR_INPUT_ORDER])
    ]
    outputs = [
        stream(t, v, o)
        for t, v, o in zip(
            node.output, attrs[fmt.ATTR_SORTED_OUTPUTS], attrs[fmt.ATTR_OUTPUT_ORDER]
        )
    ]
    partition = Partition(
        index=ordinal,
        nodes=[name],
        start_nodes=[],
        end_nodes=[],
        inputs=[TensorSpec(s.tensor, list(s.shape), s.dtype) for s in inputs],
        outputs=[TensorSpec(s.tensor, list(s.shape), s.dtype) for s in outputs],
    )
    toolchain: dict[str, str] = {}
    if producer:
        toolchain["producer"] = producer
    arch_name = str(getattr(hef, "hw_arch_name", "")).upper()
    arch = _HEF_TO_DFC_ARCH.get(arch_name, arch_name.lower())
    if getattr(hef, "sdk_version", ""):
        toolchain["sdk_version"] = str(hef.sdk_version)
    compiled = CompiledPartition(
        partition=partition,
        arch=arch,
        backend="fork",
        inputs=inputs,
        outputs=outputs,
        hef=hef_bytes,
        toolchain=toolchain,
    )
    return compiled, hef
