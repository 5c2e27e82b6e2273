"""``hailo-ort parse-hef``: text as hailortcli prints it, JSON, ONNX models, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import onnx
import pytest
from _hef_testdata import (
    ARCFACE_V1,
    MULTI_OUT_ONNX,
    SCRFD_SORTED_OUTPUTS,
    SCRFD_V3,
    SHORTCUT_ONNX,
    build_hef,
)
from conftest import shared_fixture
from onnx import TensorProto, helper

from hailo_ort.cli import main
from hailo_ort.hef.schema import message_class


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["parse-hef", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def test_text_matches_hailortcli_lines(capsys):
    code, out, err = _run(capsys, shared_fixture(ARCFACE_V1))
    assert code == 0 and err == ""
    lines = _lines(out)
    assert "Architecture HEF was compiled for: HAILO8P" in lines
    assert "Network group name: arcface_mobilefacenet, Single Context" in lines
    assert "VStream infos:" in lines
    assert "Input  arcface_mobilefacenet/input_layer1 UINT8, NHWC(112x112x3)" in lines
    assert "Output arcface_mobilefacenet/fc1 UINT8, NC(512)" in lines
    assert (
        "quant: zp 144, scale 0.016738918, limvals [-2.4104042, 1.8580198]; device order NC"
        in lines
    )
    assert "original names: MatMul_95, BatchNormalization_96" in lines
    assert not any(line.startswith("Warning") for line in lines)
    # Inputs before outputs.
    assert lines.index("VStream infos:") < lines.index(
        "Input  arcface_mobilefacenet/input_layer1 UINT8, NHWC(112x112x3)"
    )


def test_text_lists_outputs_in_sorted_order(capsys):
    code, out, _ = _run(capsys, shared_fixture(SCRFD_V3))
    assert code == 0
    outputs = [line for line in _lines(out) if line.startswith("Output ")]
    expected = [f"scrfd_2_5g/{n}" for n in SCRFD_SORTED_OUTPUTS]
    assert [line.split()[1] for line in outputs] == expected
    assert "Output scrfd_2_5g/conv44 UINT8, NHWC(80x80x20)" in outputs
    assert "Input  scrfd_2_5g/input_layer1 UINT8, NHWC(640x640x3)" in _lines(out)
    assert "Architecture HEF was compiled for: HAILO15H" in _lines(out)


def test_json_of_a_hef(capsys):
    code, out, _ = _run(capsys, shared_fixture(ARCFACE_V1), "--json")
    assert code == 0
    d = json.loads(out)
    assert d["version"] == 1 and d["hw_arch"] == "HAILO8P" and d["sdk_version"] == "3.29.0"
    (ng,) = d["network_groups"]
    assert ng["name"] == "arcface_mobilefacenet"
    assert ng["sorted_output_names"] == ["arcface_mobilefacenet/fc1"]
    (inp,) = ng["inputs"]
    assert inp["name"] == "arcface_mobilefacenet/input_layer1"
    assert inp["shape"] == [112, 112, 3]
    assert inp["format_order"] == "NHWC" and inp["format_type"] == "UINT8"
    assert inp["quant"] == {"zp": 0.0, "scale": 1.0, "limvals_min": 0.0, "limvals_max": 255.0}
    (out_stream,) = ng["outputs"]
    assert out_stream["shape"] == [1, 1, 512] and out_stream["format_order"] == "NC"
    assert out_stream["quant"]["zp"] == 144.0
    assert out_stream["quant"]["scale"] == pytest.approx(0.016738918)
    assert d["warnings"] == []


def test_onnx_model_lists_each_hailoop_hef(capsys):
    path = shared_fixture(MULTI_OUT_ONNX)
    code, out, _ = _run(capsys, path)
    assert code == 0
    lines = _lines(out)
    assert lines[0].startswith("HailoOp node ") and "HEF of 53445 bytes" in lines[0]
    assert "Network group name: conv_2_outputs, Single Context" in lines
    assert "Input  conv_2_outputs/input_layer UINT8, NHWC(4x4x3)" in lines
    assert "Output conv_2_outputs/conv1 UINT8, NHWC(4x4x8)" in lines
    assert any(line.startswith("Warning: outdated HEF") for line in lines)


def test_onnx_json_agrees_with_the_fork_attributes(capsys):
    path = shared_fixture(SHORTCUT_ONNX)
    code, out, _ = _run(capsys, path, "--json")
    assert code == 0
    d = json.loads(out)
    (entry,) = d["hailo_ops"]
    model = onnx.load(str(path))
    (node,) = [n for n in model.graph.node if n.op_type == "HailoOp"]
    attrs = {a.name: a for a in node.attribute}
    assert entry["node"] == node.name
    (ng,) = entry["hef"]["network_groups"]
    assert [s["name"] for s in ng["inputs"]] == [
        s.decode() for s in attrs["sorted_input_names"].strings
    ]
    assert ng["sorted_output_names"] == [s.decode() for s in attrs["sorted_output_names"].strings]
    assert entry["hef"]["version"] == 0 and entry["hef"]["sdk_version"] == "3.18.0.dev0"
    assert any("outdated HEF" in w for w in entry["hef"]["warnings"])


def _model_with_hailoops(tmp_path, hefs: list[bytes | None]):
    nodes = []
    prev = "x"
    for i, hef in enumerate(hefs):
        attrs = {"sorted_input_names": ["net/in"], "sorted_output_names": ["net/out"]}
        if hef is not None:
            attrs["hef"] = hef
        nodes.append(
            helper.make_node(
                "HailoOp", [prev], [f"y{i}"], name=f"hailo{i}", domain="ai.hailo", **attrs
            )
        )
        prev = f"y{i}"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.hailo", 1)]
    )
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    return path


def _small_hef(contexts: int = 1) -> bytes:
    msg = message_class("HefFile")()
    msg.header.hw_arch = 3
    msg.extensions.add(type_index=26, name=b"x (PERIPH_CALCULATION_IN_HAILORT)")
    ng = msg.network_groups.add()
    ng.network_group_metadata.network_group_name = b"net"
    for i in range(contexts):
        ctx = ng.contexts.add(context_index=i)
        for name, direction in (("net/in", 0), ("net/out", 1)):
            e = ctx.metadata.edge_layers.add(direction=direction)
            e.layer_info.name = name.encode()
            b = e.layer_info.edge_layer_base
            b.height, b.width, b.features, b.format, b.data_bytes = 4, 4, 3, 1, 1
    return build_hef(msg.SerializeToString(), 1)


def test_emulated_hailoop_has_no_hef(tmp_path, capsys):
    path = _model_with_hailoops(tmp_path, [b"", _small_hef(), None])
    code, out, _ = _run(capsys, path)
    assert code == 0
    lines = _lines(out)
    assert "HailoOp node hailo0: no HEF (emulated)" in lines
    assert "HailoOp node hailo2: no HEF (emulated)" in lines
    assert "Architecture HEF was compiled for: HAILO8L" in lines
    code, out, _ = _run(capsys, path, "--json")
    d = json.loads(out)
    assert [e["node"] for e in d["hailo_ops"]] == ["hailo0", "hailo1", "hailo2"]
    assert d["hailo_ops"][0]["hef"] is None and d["hailo_ops"][2]["hef"] is None
    assert d["hailo_ops"][1]["hef"]["hw_arch"] == "HAILO8L"


def test_multi_context_wording(tmp_path, capsys):
    path = tmp_path / "mc.hef"
    path.write_bytes(_small_hef(contexts=4))
    code, out, _ = _run(capsys, path)
    assert code == 0
    assert "Network group name: net, Multi Context - Number of contexts: 4" in _lines(out)


def test_onnx_without_hailoop(tmp_path, capsys):
    path = _model_with_hailoops(tmp_path, [])
    code, out, _ = _run(capsys, path)
    assert code == 0 and "no ai.hailo::HailoOp node" in out
    code, out, _ = _run(capsys, path, "--json")
    assert json.loads(out) == {"hailo_ops": []}


def test_corrupt_hef_inside_onnx_names_the_node(tmp_path, capsys):
    broken = bytearray(_small_hef())
    broken[-1] ^= 0xFF
    path = _model_with_hailoops(tmp_path, [bytes(broken)])
    code, out, err = _run(capsys, path)
    assert code == 1 and out == ""
    assert err.strip() == err.strip().splitlines()[0]  # one line, no traceback
    assert "HailoOp node 'hailo0'" in err and "CRC32 checksum mismatch" in err


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a HEF"),
        (b"\x01HEF\x00\x00\x00\x09" + b"\x00" * 40, "unknown HEF header version 9"),
        (b"garbage" * 10, "wrong magic"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, capsys, content, message):
    path = tmp_path / "bad.hef"
    path.write_bytes(content)
    code, out, err = _run(capsys, path)
    assert code == 1 and out == ""
    assert err.startswith("hailo-ort parse-hef: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_missing_file_and_bad_onnx(tmp_path, capsys):
    code, _, err = _run(capsys, tmp_path / "missing.hef")
    assert code == 1 and "not found" in err
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff\xff\xff not protobuf")
    code, _, err = _run(capsys, bad)
    assert code == 1 and "cannot read ONNX model" in err


def test_entry_point_runs_as_a_module():
    proc = subprocess.run(
        [sys.executable, "-m", "hailo_ort", "parse-hef", str(shared_fixture(ARCFACE_V1)), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["network_groups"][0]["name"] == "arcface_mobilefacenet"
