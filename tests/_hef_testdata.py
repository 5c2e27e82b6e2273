"""Helpers for the HEF tests: the real fixtures, and building (synthetic) HEF files.

The header layouts here are written from the format description (HAILO_FACTS §6), separately
from the reader, so that tests check the reader against an independent encoder.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

import onnx
from conftest import shared_fixture

ARCFACE_V1 = "hef/arcface_mobilefacenet_hailo8_v1.hef"
SCRFD_V3 = "hef/scrfd_2.5g_hailo10h_v3.hef"
SHORTCUT_ONNX = "hailo-fork/shortcut_example.onnx"
MULTI_OUT_ONNX = "hailo-fork/multiple_outputs.onnx"

#: the sorted output order of SCRFD_V3 (fixtures README), each name prefixed ``scrfd_2_5g/``
SCRFD_SORTED_OUTPUTS = [
    "conv43",
    "conv42",
    "conv44",
    "conv50",
    "conv49",
    "conv51",
    "conv56",
    "conv55",
    "conv57",
]

MAGIC = b"\x01HEF"
HEADER_SIZES = {0: 32, 1: 28, 2: 44, 3: 56}


def fixture_bytes(relpath: str) -> bytes:
    return shared_fixture(relpath).read_bytes()


def embedded_hef(onnx_relpath: str) -> bytes:
    """The ``hef`` attribute of the (single) ai.hailo::HailoOp node of a fork model."""
    model = onnx.load(str(shared_fixture(onnx_relpath)))
    hefs = [
        attr.s
        for node in model.graph.node
        if node.op_type == "HailoOp" and node.domain == "ai.hailo"
        for attr in node.attribute
        if attr.name == "hef"
    ]
    assert len(hefs) == 1
    return hefs[0]


def split_hef(data: bytes) -> dict:
    """Header fields and sections of a HEF (trusting its header)."""
    magic, version, proto_size = struct.unpack_from(">4sII", data)
    assert magic == MAGIC
    hs = HEADER_SIZES[version]
    out = {"version": version, "proto": data[hs : hs + proto_size]}
    if version == 0:
        out.update(ccws=b"", additional_info=b"", padding=0)
    elif version in (1, 2):
        ccws_size = struct.unpack_from(">Q", data, 16)[0]
        out.update(ccws=data[hs + proto_size : hs + proto_size + ccws_size], additional_info=b"")
        out["padding"] = 0
    else:
        ccws_size, padding, ai_size = struct.unpack_from(">QIQ", data, 20)
        start = hs + proto_size
        out.update(
            ccws=data[start : start + ccws_size],
            additional_info=data[start + ccws_size : start + ccws_size + ai_size],
            padding=padding,
        )
    return out


def xxh3_function():
    """XXH3-64 as the reader finds it (checked against the real v3 fixture), or None."""
    from hailo_ort.hef.reader import _get_xxh3

    return _get_xxh3()


def build_hef(
    proto: bytes,
    version: int,
    ccws: bytes = b"",
    additional_info: bytes = b"",
    padding: int = 0,
    checksum: int | bytes | None = None,
) -> bytes:
    """A HEF file of header ``version`` around ``proto`` (+ ``ccws`` + ``additional_info``).

    The checksum is computed unless given (v2/v3: 0 when no XXH3 implementation is available).
    """
    body = proto + ccws + additional_info
    head = MAGIC + struct.pack(">II", version, len(proto))
    if version == 0:
        assert not ccws and not additional_info
        md5 = checksum if checksum is not None else hashlib.md5(body).digest()
        return head + struct.pack(">I16s", 0, md5) + body
    if version == 1:
        crc = checksum if checksum is not None else zlib.crc32(body)
        return head + struct.pack(">IQI", crc, len(ccws), 0) + body
    if checksum is None:
        fn = xxh3_function()
        checksum = fn(body) if fn is not None else 0
    if version == 2:
        assert not additional_info
        return head + struct.pack(">QQQQ", checksum, len(ccws), 0, 0) + body
    return (
        head
        + struct.pack(">QQIQQQ", checksum, len(ccws), padding, len(additional_info), 0, 0)
        + body
    )
