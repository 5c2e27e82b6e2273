"""Bad HEF input gives a clear HefError (never a crash, a hang or a huge allocation)."""

from __future__ import annotations

import struct
import warnings

import pytest
from _hef_testdata import (
    ARCFACE_V1,
    SHORTCUT_ONNX,
    build_hef,
    embedded_hef,
    fixture_bytes,
    split_hef,
)

import hailo_ort.hef as hef_mod
from hailo_ort.errors import HailoOrtError, HefError
from hailo_ort.hef import HefWarning


@pytest.fixture(autouse=True)
def _no_outdated_warning_noise():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HefWarning)
        yield


def test_heferror_is_a_hailoort_error():
    assert issubclass(HefError, HailoOrtError)


@pytest.mark.parametrize("data", [b"", b"\x01HE", b"\x01HEF\0\0\0"])
def test_too_short(data):
    with pytest.raises(HefError, match="not a HEF"):
        hef_mod.read(data)


def test_wrong_magic():
    data = bytearray(embedded_hef(SHORTCUT_ONNX))
    data[1:4] = b"ONX"
    with pytest.raises(HefError, match="wrong magic"):
        hef_mod.read(bytes(data))


def test_onnx_file_is_not_a_hef(tmp_path):
    from conftest import shared_fixture

    with pytest.raises(HefError, match="wrong magic"):
        hef_mod.read(shared_fixture(SHORTCUT_ONNX))


@pytest.mark.parametrize("version", [4, 7, 0xFFFFFFFF])
def test_unknown_version(version):
    data = bytearray(embedded_hef(SHORTCUT_ONNX))
    data[4:8] = struct.pack(">I", version)
    with pytest.raises(HefError, match=f"unknown HEF header version {version}"):
        hef_mod.read(bytes(data))


@pytest.mark.parametrize("cut", [1, 100, 27_000])
def test_truncated_v0(cut):
    data = embedded_hef(SHORTCUT_ONNX)
    with pytest.raises(HefError, match="truncated HEF"):
        hef_mod.read(data[:-cut])


def test_truncated_inside_header():
    data = fixture_bytes(ARCFACE_V1)
    with pytest.raises(HefError, match="shorter than the 28-byte v1 header"):
        hef_mod.read(data[:20])


def test_truncated_v1_names_the_sizes():
    data = fixture_bytes(ARCFACE_V1)
    with pytest.raises(HefError, match=r"truncated HEF.*proto 997288 \+ ccws 2506040"):
        hef_mod.read(data[:-1])


def test_trailing_bytes_are_corrupt():
    data = embedded_hef(SHORTCUT_ONNX)
    with pytest.raises(HefError, match=r"corrupt HEF.*announces 27684 bytes"):
        hef_mod.read(data + b"\0")


@pytest.mark.parametrize(
    "offset, fmt, value",
    [
        (8, ">I", 0xFFFFFFFF),  # proto_size
        (16, ">Q", 0xFFFFFFFFFFFFFFFF),  # ccws_size
        (16, ">Q", 1 << 40),
    ],
)
def test_absurd_sizes_rejected_before_allocating(offset, fmt, value):
    data = bytearray(fixture_bytes(ARCFACE_V1))
    struct.pack_into(fmt, data, offset, value)
    with pytest.raises(HefError, match="truncated HEF"):
        hef_mod.read(bytes(data))


def test_absurd_v3_sizes():
    parts = split_hef(fixture_bytes(ARCFACE_V1))
    v3 = bytearray(build_hef(parts["proto"], 3, ccws=parts["ccws"]))
    struct.pack_into(">Q", v3, 32, 1 << 62)  # additional_info_size
    with pytest.raises(HefError, match="truncated HEF"):
        hef_mod.read(bytes(v3))
    v3 = bytearray(build_hef(parts["proto"], 3, ccws=parts["ccws"]))
    struct.pack_into(">I", v3, 28, 0xFFFFFFFF)  # padding larger than the ccws
    with pytest.raises(HefError, match="padding size"):
        hef_mod.read(bytes(v3))


def test_md5_mismatch_is_named():
    data = bytearray(embedded_hef(SHORTCUT_ONNX))
    data[-1] ^= 0xFF
    with pytest.raises(HefError, match="MD5 checksum mismatch"):
        hef_mod.read(bytes(data))


def test_crc32_mismatch_is_named():
    data = bytearray(fixture_bytes(ARCFACE_V1))
    data[-5] ^= 0x10  # inside the ccws
    with pytest.raises(HefError, match="CRC32 checksum mismatch"):
        hef_mod.read(bytes(data))
    # Unverified, a damaged ccws does not stop reading the description.
    assert hef_mod.read(bytes(data), verify_checksum=False).checksum_verified is False


def test_garbage_proto_with_valid_header_and_checksum():
    garbage = bytes(range(256)) * 8  # not a protobuf message
    with pytest.raises(HefError, match="protobuf body does not decode"):
        hef_mod.read(build_hef(garbage, 0))


def test_empty_proto_has_no_network_group():
    with pytest.raises(HefError, match="no network group"):
        hef_mod.read(build_hef(b"", 0))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(HefError, match="not found"):
        hef_mod.read(tmp_path / "missing.hef")
    with pytest.raises(HefError, match="directory"):
        hef_mod.read(tmp_path)


def test_outdated_hef_warns_once_per_read():
    data = embedded_hef(SHORTCUT_ONNX)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hef = hef_mod.read(data)
    outdated = [w for w in caught if issubclass(w.category, HefWarning)]
    assert len(outdated) == 1
    assert "outdated HEF" in str(outdated[0].message)
    assert "HailoRT 4.21" in str(outdated[0].message)
    assert hef.warnings == [str(outdated[0].message)]


def test_device_files_are_refused_without_reading_them():
    import os

    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    with pytest.raises(HefError, match="not a regular file"):
        hef_mod.read("/dev/zero")


def test_read_header_checks_sizes_against_the_file_size():
    data = fixture_bytes(ARCFACE_V1)
    h = hef_mod.read_header(data[:56], file_size=len(data))
    assert (h.version, h.proto_size, h.ccws_size) == (1, 997_288, 2_506_040)
    with pytest.raises(HefError, match="truncated HEF"):
        hef_mod.read_header(data[:56], file_size=len(data) - 1)
