"""Constants of the ``ai.hailo::HailoOp`` node format (Hailo's fork schema plus our metadata).

The exact layout is documented in ``docs/hailoop-format.md``.
"""

from __future__ import annotations

#: Domain and op type of the node Hailo's ONNX Runtime fork claims.
DOMAIN = "ai.hailo"
OP_TYPE = "HailoOp"
DOMAIN_VERSION = 1

#: The seven attributes of the fork's schema (all required there).
ATTR_HEF = "hef"
ATTR_SORTED_INPUTS = "sorted_input_names"
ATTR_SORTED_OUTPUTS = "sorted_output_names"
ATTR_INPUT_ORDER = "input_format_order"
ATTR_OUTPUT_ORDER = "output_format_order"
ATTR_INPUT_QUANTIZED = "input_quantized"
ATTR_OUTPUT_QUANTIZED = "output_quantized"
FORK_ATTRIBUTES = (
    ATTR_HEF,
    ATTR_SORTED_INPUTS,
    ATTR_SORTED_OUTPUTS,
    ATTR_INPUT_ORDER,
    ATTR_OUTPUT_ORDER,
    ATTR_INPUT_QUANTIZED,
    ATTR_OUTPUT_QUANTIZED,
)

#: Our own attributes (portable flavour): every name starts with this prefix.
OUR_PREFIX = "hailo_ort_"
ATTR_META = "hailo_ort_meta"  # STRING: UTF-8 JSON, see docs/hailoop-format.md
ATTR_EMULATION = "hailo_ort_emulation"  # STRING (bytes): the emulation ONNX model

#: Fork flavour keeps our metadata in ``model.metadata_props`` under ``META_KEY_PREFIX + node``.
META_KEY_PREFIX = "hailo_ort:"

#: Version of our metadata JSON (bumped on incompatible changes).
META_FORMAT_VERSION = 1

#: Flavours ``embed`` writes.
FLAVOURS = ("portable", "fork")

#: Hailo's fork reads at most these (ORT 1.11/1.14).
FORK_MAX_IR_VERSION = 8
FORK_MAX_OPSET = 16
FORK_MAX_OUTPUTS = 64
FORK_ELEM_TYPES = ("uint8", "uint16", "float32")

#: IR version that introduced function overloads (needed by the portable flavour).
PORTABLE_MIN_IR_VERSION = 10

#: HailoRT ``hailo_format_order_t`` values (hailort.h; the enum as published in HailoRT's C
#: header: AUTO=0, NHWC=1, NHCW=2, FCR=3, F8CR=4, NHW=5, NC=6, ..., NCHW=11).
FORMAT_ORDER_CODES: dict[str, int] = {
    "AUTO": 0,
    "NHWC": 1,
    "NHCW": 2,
    "FCR": 3,
    "F8CR": 4,
    "NHW": 5,
    "NC": 6,
    "BAYER_RGB": 7,
    "12_BIT_BAYER_RGB": 8,
    "HAILO_NMS": 9,
    "RGB888": 10,
    "NCHW": 11,
    "YUY2": 12,
    "NV12": 13,
    "NV21": 14,
    "HAILO_YYUV": 15,
    "HAILO_YYVU": 16,
    "RGB4": 17,
    "I420": 18,
    "HAILO_YYYYUV": 19,
    "HAILO_NMS_WITH_BYTE_MASK": 20,
    "HAILO_NMS_ON_CHIP": 21,
    "HAILO_NMS_BY_CLASS": 22,
    "HAILO_NMS_BY_SCORE": 23,
}
FORMAT_ORDER_NAMES: dict[int, str] = {v: k for k, v in FORMAT_ORDER_CODES.items()}


def format_order_name(code: int) -> str:
    """Name of a ``hailo_format_order_t`` value, e.g. 11 → "NCHW"; unknown → "UNKNOWN(n)"."""
    return FORMAT_ORDER_NAMES.get(int(code), f"UNKNOWN({int(code)})")


def host_format_order(host_order: str, rank: int) -> int:
    """The ``hailo_format_order_t`` of a host tensor laid out ``host_order`` with ``rank`` dims."""
    order = (host_order or "").upper()
    if order in FORMAT_ORDER_CODES and len(order) == rank:
        return FORMAT_ORDER_CODES[order]
    by_rank = {4: "NCHW", 3: "NHW", 2: "NC"}
    return FORMAT_ORDER_CODES[by_rank.get(rank, "AUTO")]
