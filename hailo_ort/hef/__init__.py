"""HEF reader: ``hailo_ort.hef.read(path_or_bytes) -> Hef`` (header v0–v3, protobuf body).

See docs/hef.md for what is read and its limits.
"""

from __future__ import annotations

from ..errors import HefError
from .reader import (
    DEVICE_FORMAT_ORDERS,
    HEF_MAGIC,
    PERIPH_EXTENSION,
    Hef,
    HefHeader,
    HefWarning,
    NetFlowOp,
    NetworkGroupInfo,
    NmsParams,
    VStreamInfo,
    read,
    read_header,
    xxh3_available,
)

__all__ = [
    "DEVICE_FORMAT_ORDERS",
    "HEF_MAGIC",
    "PERIPH_EXTENSION",
    "Hef",
    "HefError",
    "HefHeader",
    "HefWarning",
    "NetFlowOp",
    "NetworkGroupInfo",
    "NmsParams",
    "VStreamInfo",
    "read",
    "read_header",
    "xxh3_available",
]
