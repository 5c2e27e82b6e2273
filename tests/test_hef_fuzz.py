"""Fuzz the HEF reader with mutated real files: every outcome is a Hef or a HefError.

Successful reads are also rendered (JSON and text) to make sure the CLI never crashes on
what the reader lets through. Example counts stay small so the file runs in seconds.
"""

from __future__ import annotations

import json
import struct
import warnings
from functools import cache

from _hef_testdata import (
    ARCFACE_V1,
    SHORTCUT_ONNX,
    build_hef,
    embedded_hef,
    fixture_bytes,
    split_hef,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hailo_ort.hef as hef_mod
from hailo_ort.cli.commands.parse_hef import hef_text
from hailo_ort.errors import HefError
from hailo_ort.hef import Hef, HefWarning

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # reproducible in CI
)


# Loaded once, not passed as fixtures: Hypothesis would print 3 MB of bytes on failure.
@cache
def _v0() -> bytes:
    return embedded_hef(SHORTCUT_ONNX)


@cache
def _v1() -> bytes:
    return fixture_bytes(ARCFACE_V1)


def _outcome(data: bytes, verify: bool = True) -> Hef | None:
    """Read ``data``; returns the Hef or None for a HefError; anything else fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HefWarning)
        try:
            hef = hef_mod.read(data, verify_checksum=verify)
        except HefError as exc:
            assert str(exc)  # a message that names the problem
            return None
    json.dumps(hef.to_dict())
    hef_text(hef)
    return hef


def _flip(data: bytes, positions: list[int], bits: list[int]) -> bytes:
    out = bytearray(data)
    for pos, bit in zip(positions, bits):
        out[pos % len(out)] ^= 1 << bit
    return bytes(out)


flips = st.lists(st.integers(0, 2**31), min_size=1, max_size=8)
bits = st.lists(st.integers(0, 7), min_size=8, max_size=8)


@FUZZ
@given(positions=flips, bit_list=bits)
def test_bit_flips_anywhere_v0(positions, bit_list):
    v0 = _v0()
    mutated = _flip(v0, positions, bit_list)
    hef = _outcome(mutated)
    # With the MD5 verified, a readable file can differ only in the reserved header field.
    if hef is not None:
        assert all(a == b for i, (a, b) in enumerate(zip(v0, mutated)) if not 12 <= i < 16)


@FUZZ
@given(positions=flips, bit_list=bits)
def test_bit_flips_in_proto_unverified_v0(positions, bit_list):
    v0 = _v0()
    body = len(v0) - 32
    shifted = [32 + p % body for p in positions]
    _outcome(_flip(v0, shifted, bit_list), verify=False)


@settings(FUZZ, max_examples=25)
@given(positions=flips, bit_list=bits)
def test_bit_flips_in_proto_unverified_v1(positions, bit_list):
    v1 = _v1()
    proto_size = struct.unpack_from(">I", v1, 8)[0]
    shifted = [28 + p % proto_size for p in positions]
    _outcome(_flip(v1, shifted, bit_list), verify=False)


@FUZZ
@given(cut=st.integers(0, 2**31))
def test_truncations(cut):
    v0 = _v0()
    n = cut % len(v0)
    assert _outcome(v0[:n]) is None  # a truncated file is never accepted


@FUZZ
@given(
    version=st.one_of(st.integers(0, 3), st.integers(0, 2**32 - 1)),
    proto_size=st.one_of(st.integers(0, 2**32 - 1), st.integers(27_000, 28_000)),
    words=st.lists(st.integers(0, 2**32 - 1), min_size=11, max_size=11),
)
def test_random_header_fields(version, proto_size, words):
    v0 = _v0()
    head = b"\x01HEF" + struct.pack(">II", version, proto_size) + struct.pack(">11I", *words)
    data = head + v0[len(head) :]
    _outcome(data, verify=False)
    _outcome(data, verify=True)


@settings(FUZZ, max_examples=40)
@given(
    v1_header_words=st.lists(st.integers(0, 2**32 - 1), min_size=4, max_size=4),
)
def test_random_v1_size_fields(v1_header_words):
    v1 = _v1()
    crc, hi, lo, reserved = v1_header_words
    data = v1[:12] + struct.pack(">IIII", crc, hi, lo, reserved) + v1[28:]
    hef = _outcome(data, verify=False)
    if hef is not None:  # only the exact ccws size is accepted
        assert (hi << 32 | lo) == 2_506_040


@FUZZ
@given(
    edits=st.lists(
        st.tuples(st.integers(0, 2**31), st.binary(min_size=0, max_size=6), st.integers(0, 6)),
        min_size=1,
        max_size=5,
    ),
    version=st.integers(0, 3),
)
def test_garbage_proto_in_valid_frame(edits, version):
    v0 = _v0()
    proto = bytearray(split_hef(v0)["proto"])
    for pos, insert, delete in edits:
        at = pos % (len(proto) + 1)
        proto[at : at + delete] = insert
    _outcome(build_hef(bytes(proto), version))


@FUZZ
@given(proto=st.binary(min_size=0, max_size=400))
def test_random_bytes_as_proto(proto):
    _outcome(build_hef(proto, 1))
