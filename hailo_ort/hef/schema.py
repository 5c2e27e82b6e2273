"""Protobuf message types for the part of a HEF body that hailo-ort reads.

The descriptors are built here in code (no ``.proto`` file, no ``protoc`` at build time) from the
field numbers and wire types of the HEF format (see docs/hef.md). Only the fields the reader
needs are declared; protobuf keeps everything else as unknown fields, so HEFs from newer
compilers still parse.

Design choices that keep the reader robust on damaged or unusual files:

- ``proto2`` syntax, so that scalar fields have presence (e.g. a boundary layer's ``pad_index``)
  and strings are not UTF-8 validated by the parser;
- every text field is declared ``bytes`` and decoded by the reader with replacement characters;
- every enum is declared as a plain integer (``int64``), so unknown enum values survive.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "hailo_ort.hef.schema"
_FILE_NAME = "hailo_ort/hef/schema_v1.proto"

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "bytes": _F.TYPE_BYTES,
    "bool": _F.TYPE_BOOL,
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,  # used for enums: any varint value is kept
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
}

# message name → [(field name, number, type, repeated)]; a type that is not a scalar name is a
# message name of this table.
_MESSAGES: dict[str, list[tuple[str, int, str, bool]]] = {
    "HefFile": [
        ("header", 1, "HefHeader", False),
        ("network_groups", 2, "NetworkGroup", True),
        ("extensions", 5, "Extension", True),
        ("optional_extensions", 6, "Extension", True),
    ],
    "HefHeader": [
        ("hw_arch", 1, "int64", False),
        ("timestamp", 2, "uint64", False),
        ("sdk_version", 3, "bytes", False),
        ("version", 4, "uint64", False),
    ],
    "Extension": [
        ("type_index", 1, "uint32", False),
        ("name", 2, "bytes", False),
    ],
    # A network group; net-flow core ops use the same field numbers, so the same type serves.
    "NetworkGroup": [
        ("network_group_metadata", 1, "NetworkGroupMetadata", False),
        ("contexts", 3, "Context", True),
        ("sorted_outputs_order", 4, "bytes", True),
        ("networks_names", 6, "bytes", True),
        ("partial_network_groups", 7, "PartialNetworkGroup", True),
        ("ops", 8, "Op", True),
        ("pad_edges", 9, "PadEdge", True),
        ("network_group_name", 10, "bytes", False),
    ],
    "NetworkGroupMetadata": [
        ("network_group_name", 1, "bytes", False),
        ("network_group_index", 2, "uint32", False),
        ("bottleneck_fps", 4, "double", False),
    ],
    "PartialNetworkGroup": [
        ("network_group", 1, "NetworkGroup", False),
    ],
    "Context": [
        ("context_index", 1, "uint32", False),
        ("metadata", 3, "ContextMetadata", False),
    ],
    "ContextMetadata": [
        ("name", 1, "bytes", False),
        ("edge_layers", 2, "EdgeLayer", True),
    ],
    "EdgeLayer": [
        ("direction", 1, "int64", False),
        ("edge_layer_type", 2, "int64", False),
        ("layer_info", 3, "EdgeLayerInfo", False),
        ("layer_mux", 4, "EdgeLayerMux", False),
        ("context_switch_info", 5, "ContextSwitchInfo", False),
        ("network_index", 6, "uint32", False),
        ("pad_index", 7, "uint32", False),
        ("layer_planes", 8, "EdgeLayerPlanes", False),
    ],
    "EdgeLayerInfo": [
        ("name", 1, "bytes", False),
        ("edge_layer_base", 2, "EdgeLayerBase", False),
        ("numeric_info", 3, "NumericInfo", False),
        ("hn_output_layer_name", 4, "bytes", False),
        ("original_names", 5, "bytes", True),
        ("transposed", 6, "bool", False),
    ],
    "EdgeLayerMux": [
        ("name", 1, "bytes", False),
        ("edge_layer_base", 2, "EdgeLayerBase", False),
        ("hn_output_layer_name", 4, "bytes", False),
        ("predecessors", 5, "Edge", True),
        ("original_names", 6, "bytes", True),
    ],
    "EdgeLayerPlanes": [
        ("name", 1, "bytes", False),
        ("planes_format", 2, "int64", False),
        ("planes", 3, "Edge", True),
        ("height", 4, "uint32", False),
        ("width", 5, "uint32", False),
        ("features", 6, "uint32", False),
    ],
    "Edge": [
        ("layer_info", 1, "EdgeLayerInfo", False),
        ("layer_mux", 2, "EdgeLayerMux", False),
        ("layer_planes", 3, "EdgeLayerPlanes", False),
    ],
    "ContextSwitchInfo": [
        ("context_index", 1, "uint32", False),
        ("edge_connection_type", 3, "int64", False),
    ],
    "EdgeLayerBase": [
        ("height", 1, "uint32", False),
        ("padded_height", 2, "uint32", False),
        ("width", 3, "uint32", False),
        ("padded_width", 4, "uint32", False),
        ("features", 5, "uint32", False),
        ("padded_features", 6, "uint32", False),
        ("format", 7, "uint32", False),
        ("additional_info", 11, "AdditionalInfo", False),
        ("data_bytes", 12, "uint32", False),
    ],
    "AdditionalInfo": [
        ("nms_info", 1, "NmsInfo", False),
    ],
    "NmsInfo": [
        ("number_of_classes", 2, "uint64", False),
        ("max_output_size", 3, "uint64", False),
        ("bbox_size", 4, "uint64", False),
    ],
    "NumericInfo": [
        ("qp_zp", 1, "float", False),
        ("qp_scale", 2, "float", False),
        ("limvals_min", 3, "float", False),
        ("limvals_max", 4, "float", False),
        ("qp_zps", 5, "double", True),
        ("qp_scales", 6, "double", True),
    ],
    "Op": [
        ("name", 1, "bytes", False),
        ("input_pads", 2, "Pad", True),
        ("output_pads", 3, "Pad", True),
        ("core_op", 4, "NetworkGroup", False),
        ("nms_op", 5, "NmsOp", False),
        ("logits_op", 6, "LogitsOp", False),
    ],
    "Pad": [
        ("index", 1, "uint32", False),
        ("name", 2, "bytes", False),
        ("format_order", 3, "int64", False),
        ("numeric_info", 5, "NumericInfo", False),
        ("tensor_shape", 6, "TensorShape", False),
        ("nms_shape", 7, "NmsShape", False),
        ("format_type", 8, "int64", False),
    ],
    "TensorShape": [
        ("height", 1, "uint32", False),
        ("padded_height", 2, "uint32", False),
        ("width", 3, "uint32", False),
        ("padded_width", 4, "uint32", False),
        ("features", 5, "uint32", False),
        ("padded_features", 6, "uint32", False),
    ],
    "NmsShape": [
        ("number_of_classes", 1, "uint32", False),
        ("max_bboxes_per_class", 2, "uint32", False),
    ],
    "NmsOp": [
        ("nms_score_th", 1, "double", False),
        ("nms_iou_th", 2, "double", False),
        ("max_proposals_per_class", 3, "uint32", False),
        ("classes", 4, "uint32", False),
        ("background_removal", 5, "bool", False),
        # The meta-architecture is the one of these that is set.
        ("yolo", 7, "NmsMetaArch", False),
        ("yolox", 8, "NmsMetaArch", False),
        ("ssd", 9, "NmsMetaArch", False),
        ("iou", 10, "NmsMetaArch", False),
        ("yolo_seg", 11, "NmsMetaArch", False),
        ("yolov8", 12, "NmsMetaArch", False),
    ],
    # Every meta-arch message starts with the input image size (absent for the IoU-only op).
    "NmsMetaArch": [
        ("image_height", 1, "double", False),
        ("image_width", 2, "double", False),
    ],
    "LogitsOp": [
        ("logits_type", 1, "int64", False),
    ],
    "PadEdge": [
        ("src", 1, "uint32", False),
        ("dst", 2, "uint32", False),
    ],
}

#: NmsOp meta-arch field → the name HailoRT and the DFC (``nms_postprocess(meta_arch=...)``) use.
NMS_META_ARCH_FIELDS: dict[str, str] = {
    "yolo": "yolov5",
    "yolox": "yolox",
    "ssd": "ssd",
    "iou": "iou",
    "yolo_seg": "yolov5_seg",
    "yolov8": "yolov8",
}


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto(name=_FILE_NAME, package=_PACKAGE, syntax="proto2")
    for msg_name, fields in _MESSAGES.items():
        msg = fdp.message_type.add(name=msg_name)
        for name, number, type_name, repeated in fields:
            field = msg.field.add(name=name, number=number)
            field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
            if type_name in _SCALARS:
                field.type = _SCALARS[type_name]
            else:
                field.type = _F.TYPE_MESSAGE
                field.type_name = f".{_PACKAGE}.{type_name}"
    return fdp


@lru_cache(maxsize=1)
def _classes() -> dict[str, Any]:
    pool = descriptor_pool.DescriptorPool()  # private pool: no clash with other descriptors
    pool.Add(_file_descriptor())
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in _MESSAGES
    }


def message_class(name: str) -> Any:
    """The generated message class called ``name`` (e.g. ``"HefFile"``)."""
    return _classes()[name]


def parse_hef_proto(data: bytes) -> Any:
    """Parse the protobuf body of a HEF into a ``HefFile`` message (raises protobuf's errors)."""
    msg = message_class("HefFile")()
    msg.ParseFromString(data)
    return msg
