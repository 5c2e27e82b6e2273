"""The HEF reader against real HEFs: every expected value comes from shared/fixtures/README.md."""

from __future__ import annotations

import warnings

import pytest
from _hef_testdata import (
    ARCFACE_V1,
    MULTI_OUT_ONNX,
    SCRFD_SORTED_OUTPUTS,
    SCRFD_V3,
    SHORTCUT_ONNX,
    build_hef,
    embedded_hef,
    fixture_bytes,
    split_hef,
    xxh3_function,
)
from conftest import shared_fixture

import hailo_ort.hef as hef_mod
from hailo_ort.errors import ArchError, HefError
from hailo_ort.hef import Hef, HefWarning, VStreamInfo


def _read_ignoring_warnings(data) -> Hef:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HefWarning)
        return hef_mod.read(data)


def _check_stream(
    vs: VStreamInfo, name, shape, order, zp, scale, lim, original=None, rel=1e-6
) -> None:
    assert vs.name == name
    assert vs.shape == shape
    assert vs.format_order == order
    assert vs.format_type == "UINT8"
    assert vs.quant.zp == pytest.approx(zp)
    assert vs.quant.scale == pytest.approx(scale, rel=rel)
    assert vs.quant.limvals_min == pytest.approx(lim[0], rel=rel)
    assert vs.quant.limvals_max == pytest.approx(lim[1], rel=rel)
    if original is not None:
        assert vs.original_names == original


# ------------------------------------------------------------------ arcface, header v1


def test_arcface_v1_header_and_metadata():
    path = shared_fixture(ARCFACE_V1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", HefWarning)  # a current HEF: no warning at all
        hef = hef_mod.read(path)
    assert hef.version == 1
    assert hef.header.header_size == 28
    assert hef.header.proto_size == 997_288
    assert hef.header.ccws_size == 2_506_040
    assert hef.header.total_size == 3_503_356
    assert hef.header.checksum_kind == "crc32"
    assert hef.checksum_verified
    assert hef.hw_arch == 1
    assert hef.hw_arch_name == "HAILO8P"
    assert hef.sdk_version == "3.29.0"
    assert "PERIPH_CALCULATION_IN_HAILORT" in hef.extensions
    assert not hef.is_outdated
    assert hef.warnings == []


def test_arcface_v1_streams():
    hef = hef_mod.read(shared_fixture(ARCFACE_V1))
    assert [ng.name for ng in hef.network_groups] == ["arcface_mobilefacenet"]
    ng = hef.network_groups[0]
    assert ng.contexts == 1 and not ng.is_multi_context
    assert ng.sorted_output_names == ["arcface_mobilefacenet/fc1"]
    assert len(ng.inputs) == 1 and len(ng.outputs) == 1
    _check_stream(
        ng.inputs[0],
        "arcface_mobilefacenet/input_layer1",
        (112, 112, 3),
        "NHWC",
        0,
        1.0,
        (0, 255),
        ["model_script_layer_normalization1"],
    )
    out = ng.outputs[0]
    _check_stream(
        out,
        "arcface_mobilefacenet/fc1",
        (1, 1, 512),
        "NC",
        144,
        0.016738918,
        (-2.4104042, 1.8580198),
        ["MatMul_95", "BatchNormalization_96"],
    )
    assert out.host_format_order == "NC" and out.shape_str() == "(512)"
    assert ng.inputs[0].dtype == "uint8"


def test_path_and_bytes_give_the_same_result():
    path = shared_fixture(ARCFACE_V1)
    a = hef_mod.read(path)
    b = hef_mod.read(path.read_bytes())
    c = hef_mod.read(str(path))
    assert a.to_dict() == b.to_dict() == c.to_dict()
    assert b.data == path.read_bytes()


# ------------------------------------------------------------------ scrfd, header v3


def test_scrfd_v3_header_and_metadata():
    hef = hef_mod.read(shared_fixture(SCRFD_V3))
    assert hef.version == 3
    assert hef.header.header_size == 56
    assert hef.header.proto_size == 16_878
    assert hef.header.additional_info_size == 1_680
    assert hef.header.total_size == 1_527_808
    assert hef.header.checksum_kind == "xxh3_64"
    assert hef.checksum_verified == (xxh3_function() is not None)
    assert hef.hw_arch == 103
    assert hef.sdk_version.startswith("sdk-version: 5.2.0")
    assert hef.warnings == []


def test_scrfd_v3_streams_in_sorted_order():
    hef = hef_mod.read(shared_fixture(SCRFD_V3))
    ng = hef.network_group("scrfd_2_5g")
    expected = [f"scrfd_2_5g/{n}" for n in SCRFD_SORTED_OUTPUTS]
    assert ng.sorted_output_names == expected
    assert [o.name for o in ng.outputs] == expected
    _check_stream(ng.inputs[0], "scrfd_2_5g/input_layer1", (640, 640, 3), "NHCW", 0, 1.0, (0, 255))
    by_name = {o.name: o for o in ng.outputs}
    conv44 = by_name["scrfd_2_5g/conv44"]
    assert conv44.shape == (80, 80, 20) and conv44.format_order == "NHCW"
    assert conv44.quant.zp == 121 and conv44.quant.scale == pytest.approx(0.026140496)
    _check_stream(
        by_name["scrfd_2_5g/conv49"],
        "scrfd_2_5g/conv49",
        (40, 40, 2),
        "NHCW",
        0,
        0.0039215689,
        (0, 1),
    )
    assert all(o.format_type == "UINT8" for o in ng.outputs)
    assert conv44.host_format_order == "NHWC"


def test_xxh3_of_real_v3_file_is_verified_when_available():
    if xxh3_function() is None:
        pytest.skip("neither the xxhash package nor libxxhash is available")
    data = bytearray(fixture_bytes(SCRFD_V3))
    data[-1] ^= 0x01  # inside the additional info: covered by the checksum
    with pytest.raises(HefError, match="XXH3_64 checksum mismatch"):
        hef_mod.read(bytes(data))


# ------------------------------------------------------------------ embedded (v0) HEFs


def test_shortcut_example_embedded_v0():
    data = embedded_hef(SHORTCUT_ONNX)
    assert len(data) == 27_684
    with pytest.warns(HefWarning, match="outdated HEF"):
        hef = hef_mod.read(data)
    assert hef.version == 0 and hef.header.checksum_kind == "md5" and hef.checksum_verified
    assert hef.hw_arch == 1 and hef.sdk_version == "3.18.0.dev0"
    assert hef.is_outdated
    assert any("4.21" in w and "PERIPH_CALCULATION_IN_HAILORT" in w for w in hef.warnings)
    ng = hef.network_group()
    assert ng.name == "shortcut_rubinator"
    assert [s.name for s in ng.inputs] == ["shortcut_rubinator/input_layer"]
    _check_stream(
        ng.inputs[0], "shortcut_rubinator/input_layer", (24, 16, 3), "NHCW", 0, 1.0, (0, 255)
    )
    _check_stream(
        ng.outputs[0], "shortcut_rubinator/shortcut1", (24, 16, 3), "NHCW", 0, 1.0, (0, 255)
    )


def test_multiple_outputs_embedded_v0():
    data = embedded_hef(MULTI_OUT_ONNX)
    assert len(data) == 53_445
    hef = _read_ignoring_warnings(data)
    assert hef.sdk_version == "3.17.0.dev0" and hef.is_outdated
    ng = hef.network_group()
    assert ng.name == "conv_2_outputs"
    # The fork's sorted_output_names attribute gives the same order.
    assert ng.sorted_output_names == ["conv_2_outputs/conv1", "conv_2_outputs/shortcut1"]
    assert [o.name for o in ng.outputs] == ng.sorted_output_names
    _check_stream(
        ng.inputs[0], "conv_2_outputs/input_layer", (4, 4, 3), "NHCW", 0, 0.18431373, (0, 47)
    )
    _check_stream(ng.outputs[0], "conv_2_outputs/conv1", (4, 4, 8), "NHCW", 0, 0.54509807, (0, 139))
    _check_stream(
        ng.outputs[1], "conv_2_outputs/shortcut1", (4, 4, 3), "NHCW", 0, 0.18431373, (0, 47)
    )


def test_unknown_network_group_name_is_a_clear_error():
    hef = hef_mod.read(shared_fixture(ARCFACE_V1))
    with pytest.raises(HefError, match=r"no network group 'nope'.*arcface_mobilefacenet"):
        hef.network_group("nope")


# ------------------------------------------------------------------ synthetic v2


def test_synthetic_v2_from_v1_fixture():
    parts = split_hef(fixture_bytes(ARCFACE_V1))
    v2 = build_hef(parts["proto"], 2, ccws=parts["ccws"])
    assert len(v2) == 44 + 997_288 + 2_506_040
    hef = hef_mod.read(v2)
    assert hef.version == 2 and hef.header.header_size == 44
    assert hef.header.ccws_size == 2_506_040
    assert hef.checksum_verified == (xxh3_function() is not None)
    assert hef.network_group().outputs[0].name == "arcface_mobilefacenet/fc1"
    # A wrong checksum is reported (when it can be verified) and ignored on request.
    bad = build_hef(parts["proto"], 2, ccws=parts["ccws"], checksum=12345)
    if xxh3_function() is not None:
        with pytest.raises(HefError, match="XXH3_64 checksum mismatch"):
            hef_mod.read(bad)
    assert hef_mod.read(bad, verify_checksum=False).version == 2


def test_synthetic_v3_with_padding_and_additional_info():
    parts = split_hef(fixture_bytes(ARCFACE_V1))
    v3 = build_hef(
        parts["proto"], 3, ccws=parts["ccws"] + b"\0" * 8, padding=8, additional_info=b"extra-info"
    )
    hef = hef_mod.read(v3)
    assert hef.header.padding_size == 8 and hef.header.additional_info_size == 10
    assert hef.network_group().name == "arcface_mobilefacenet"


# ------------------------------------------------------------------ arch compatibility


def test_hailo8_family_hef_runs_on_hailo8_not_hailo8l():
    hef = hef_mod.read(shared_fixture(ARCFACE_V1))  # hw_arch HAILO8P
    assert hef.runs_on("HAILO8") and hef.runs_on("hailo8") and hef.runs_on("HAILO8R")
    assert not hef.runs_on("HAILO8L")
    assert not hef.runs_on("HAILO10H")
    hef.check_runs_on("HAILO8")
    with pytest.raises(
        ArchError, match=r"HAILO8P, this device is HAILO8L: recompile with --arch hailo8l"
    ):
        hef.check_runs_on("HAILO8L")


def test_arch_103_runs_on_hailo10h_and_hailo15h():
    hef = hef_mod.read(shared_fixture(SCRFD_V3))
    assert hef.runs_on("HAILO10H") and hef.runs_on("HAILO15H")
    assert not hef.runs_on("HAILO8") and not hef.runs_on("HAILO8L")
    with pytest.raises(ArchError, match="recompile with --arch hailo8"):
        hef.check_runs_on("HAILO8")


@pytest.mark.parametrize(
    "code, device, ok",
    [
        (0, "HAILO8", True),
        (0, "HAILO8L", False),
        (3, "HAILO8", True),
        (3, "HAILO8L", True),
        (2, "HAILO8L", False),
    ],
)
def test_arch_compatibility_by_code(code, device, ok):
    from hailo_ort.hef.schema import parse_hef_proto

    parts = split_hef(fixture_bytes(ARCFACE_V1))
    msg = parse_hef_proto(parts["proto"])
    msg.header.hw_arch = code
    hef = hef_mod.read(build_hef(msg.SerializeToString(), 1, ccws=parts["ccws"]))
    assert hef.hw_arch == code
    assert hef.runs_on(device) is ok
    if not ok and code == 0:
        with pytest.raises(ArchError) as err:
            hef.check_runs_on(device)
        assert str(err.value) == (
            "HEF built for HAILO8, this device is HAILO8L: recompile with --arch hailo8l"
        )
