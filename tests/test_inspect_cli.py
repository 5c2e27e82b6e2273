"""``hailo-ort inspect``: text, --json schema, --html report, and one-line errors."""

from __future__ import annotations

import json
import re
import shlex

import onnx
import pytest
from _graphs import YOLO_HEAD_CONVS, middle_unsupported, resnet_like, yolov8_like

from hailo_ort.cli import main


@pytest.fixture(scope="module")
def yolo_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "yolo.onnx"
    onnx.save(yolov8_like(), str(path))
    return path


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_text_summary(capsys, yolo_path):
    code, out, err = run(capsys, "inspect", str(yolo_path), "--arch", "hailo8l")
    assert code == 0, err
    assert "1 partition(s)" in out
    assert "/model.22/Concat" in out
    assert "value ranges" in out
    assert re.search(r"\(\d+\.\d%\)", out)  # FLOPs share on the device
    [cmd] = [
        line.strip() for line in out.splitlines() if line.strip().startswith("hailo parser onnx")
    ]
    argv = shlex.split(cmd)
    assert argv[3] == str(yolo_path)
    assert argv[argv.index("--hw-arch") + 1] == "hailo8l"
    start = argv.index("--start-node-names")
    end = argv.index("--end-node-names")
    shapes = argv.index("--tensor-shapes")
    assert argv[start + 1 : end] == ["/model.0/conv/Conv"]
    assert sorted(argv[end + 1 : shapes]) == sorted(YOLO_HEAD_CONVS)
    assert argv[shapes + 1 :] == ["images=[1,3,64,64]"]


def test_json_schema(capsys, yolo_path):
    code, out, _ = run(capsys, "inspect", str(yolo_path), "--arch", "hailo8", "--json")
    assert code == 0
    data = json.loads(out)  # exactly one JSON object, nothing else on stdout
    assert data["arch"] == "hailo8"
    assert 0.0 <= data["device_flops_share"] <= 1.0
    assert isinstance(data["partitions"], list) and len(data["partitions"]) == 1
    part = data["partitions"][0]
    for key in ("start_nodes", "end_nodes", "nodes", "inputs", "outputs", "flops"):
        assert key in part
    for tensor in part["inputs"] + part["outputs"]:
        assert set(tensor) == {"name", "shape", "dtype"}
        assert all(isinstance(d, int) for d in tensor["shape"])
    assert sorted(part["end_nodes"]) == sorted(YOLO_HEAD_CONVS)
    assert part["inputs"] == [{"name": "images", "shape": [1, 3, 64, 64], "dtype": "float32"}]
    for node in data["cpu_nodes"]:
        assert set(node) == {"name", "op_type", "reason"} and node["reason"]
    all_nodes = {n for p in data["partitions"] for n in p["nodes"]} | {
        c["name"] for c in data["cpu_nodes"]
    }
    assert len(all_nodes) == data["nodes"]


def test_html_report_is_written_and_self_contained(capsys, tmp_path, yolo_path):
    report = tmp_path / "sub" / "report.html"
    code, _, _ = run(capsys, "inspect", str(yolo_path), "--arch", "hailo15h", "--html", str(report))
    assert code == 0
    html = report.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "<svg" in html and "</svg>" in html
    # no external resources: no scripts/styles/images fetched from anywhere
    assert not re.search(r"(src|href)\s*=", html, re.I)
    assert "url(" not in html and "@import" not in html and "http" not in html
    # every node is drawn, device ones in the partition colour
    assert html.count("<rect") == len(yolov8_like().graph.node)
    assert "/model.22/cv2.0/cv2.0.2/Conv (Conv)\ndevice partition 0" in html
    assert "/model.22/dfl/Transpose (Transpose)\nCPU: unsupported op" in html
    assert not list(report.parent.glob(".*.tmp"))  # atomic write leaves no temp file


def test_html_report_reads_well(yolo_path):
    """Legend lists only the placements present, with counts; labels stay readable on light
    fills; the parser notes appear; the CPU table comes before the long graph."""
    from hailo_ort.partition.inspect import inspect
    from hailo_ort.partition.report_html import _text_colour

    result = inspect(str(yolo_path), arch="hailo8l")
    html = result.to_html()
    legend = html.split('<p class="legend">', 1)[1].split("</p>", 1)[0]
    categories: dict[str, int] = {}
    for c in result.cpu_nodes:
        key = c.reason.split(":", 1)[0]
        categories[key] = categories.get(key, 0) + 1
    for key, count in categories.items():
        assert f"CPU: {key} ({count})" in legend
    assert "CPU: dynamic shape" not in legend  # no such node in this model
    assert f"partition 0 ({len(result.partitions[0].nodes)})" in legend
    assert _text_colour("#fdd835") == "#111" and _text_colour("#2e7d32") == "#fff"
    assert html.index("<h2>CPU nodes") < html.index("<svg")
    assert "stroke-dasharray" in html  # the skip connections are drawn apart from chains
    example = inspect("example:resnet18", arch="hailo8").to_html()
    assert "example:resnet18 is built in memory" in example


def test_html_large_graph_stays_compact(tmp_path):
    from _graphs import Builder
    from onnx import TensorProto, helper

    from hailo_ort.partition.inspect import inspect

    b = Builder()
    b.shapes["x"] = [1, 4, 4, 4]
    t = "x"
    for i in range(2000):
        t = b.conv(t, f"n{i}", 4, k=1) if i % 40 else b.node("Erf", [t], f"n{i}", [1, 4, 4, 4])
    m = b.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 4])], [t])
    result = inspect(m, arch="hailo8", min_partition_share=0.0)
    html = result.to_html()
    assert html.count("<rect") == 2000
    assert len(html) < 3_000_000
    # 50 Erf nodes on the CPU: the text summary groups them instead of listing each
    assert len(result.cpu_nodes) == 50
    text = result.to_text()
    assert "50 × Erf" in text
    assert "more partitions" in text
    assert len(text.splitlines()) < 200


def test_two_partitions_two_parser_commands(capsys, tmp_path):
    path = tmp_path / "mid.onnx"
    onnx.save(middle_unsupported(), str(path))
    code, out, _ = run(capsys, "inspect", str(path), "--arch", "hailo8")
    assert code == 0
    assert out.count("hailo parser onnx") == 2
    assert "unsupported op: Erf" in out


def test_ops_override_on_the_command_line(capsys, tmp_path):
    path = tmp_path / "mid.onnx"
    onnx.save(middle_unsupported(), str(path))
    ops = tmp_path / "ops.json"
    ops.write_text(json.dumps({"ops": {"Erf": {"supported": True}}}))
    code, out, _ = run(
        capsys, "inspect", str(path), "--arch", "hailo8", "--ops", str(ops), "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert len(data["partitions"]) == 1 and data["cpu_nodes"] == []


@pytest.mark.parametrize(
    "setup, argv, message",
    [
        # messages from stage 1 (prepare): they must name the file / the input
        ("garbage", ["--arch", "hailo8"], "m.onnx"),
        ("missing", ["--arch", "hailo8"], "m.onnx"),
        ("model", ["--arch", "hailo9"], "valid archs: hailo8, hailo8r, hailo8l"),
        ("model", ["--arch", "hailo8", "--input-shape", "nope=1,3,32,32"], "nope"),
        ("dynamic", ["--arch", "hailo8"], "input"),
        ("model", ["--arch", "hailo8", "--ops", "OPS"], "my_ops.json"),
    ],
)
def test_errors_are_one_line_no_traceback(capsys, tmp_path, setup, argv, message):
    path = tmp_path / "m.onnx"
    if setup == "garbage":
        path.write_bytes(b"\x08\x07 this is not onnx \xff\xfe")
    elif setup == "model":
        onnx.save(resnet_like(), str(path))
    elif setup == "dynamic":
        onnx.save(resnet_like(dynamic_batch=True), str(path))
    ops = tmp_path / "my_ops.json"
    ops.write_text('{"ops": {"Conv": {"supported": 1}}}')
    argv = [str(ops) if a == "OPS" else a for a in argv]
    code, out, err = run(capsys, "inspect", str(path), *argv)
    assert code != 0
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hailo-ort inspect: error:")
    assert message in lines[0]
    assert "Traceback" not in err


def test_dynamic_batch_fixed_with_input_shape(capsys, tmp_path):
    path = tmp_path / "dyn.onnx"
    onnx.save(resnet_like(dynamic_batch=True), str(path))
    code, out, _ = run(
        capsys,
        "inspect",
        str(path),
        "--arch",
        "hailo8",
        "--input-shape",
        "input=1,3,32,32",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert data["partitions"][0]["inputs"][0]["shape"] == [1, 3, 32, 32]


def test_example_model(capsys):
    code, out, _ = run(capsys, "inspect", "example:yolov8n", "--arch", "hailo8l", "--json")
    assert code == 0
    data = json.loads(out)
    assert sorted(data["partitions"][0]["end_nodes"]) == sorted(
        f"/model.22/cv{b}.{i}/cv{b}.{i}.2/Conv" for i in range(3) for b in (2, 3)
    )


def test_example_parser_command_says_to_save_the_example(capsys):
    code, out, _ = run(capsys, "inspect", "example:resnet18", "--arch", "hailo8")
    assert code == 0
    command = next(ln for ln in out.splitlines() if "hailo parser onnx" in ln)
    assert shlex.split(command)[3] == "resnet18.onnx"
    note = next(ln for ln in out.splitlines() if ln.strip().startswith("note:"))
    assert "example:resnet18 is built in memory" in note
    # the suggested snippet really writes the file the command names
    snippet = note.split('python -c "', 1)[1].rstrip('"')
    assert "get_example('resnet18')" in snippet and "'resnet18.onnx'" in snippet


def test_parser_notes_name_nodes_that_have_no_unique_name_in_the_file(capsys, tmp_path):
    """The DFC parser reads the user's file: renamed start/end nodes need a warning."""
    model = resnet_like()
    first_conv = next(n for n in model.graph.node if n.op_type == "Conv")
    first_conv.name = ""  # the partition starts here
    path = tmp_path / "unnamed.onnx"
    onnx.save(model, str(path))
    code, out, _ = run(capsys, "inspect", str(path), "--arch", "hailo8", "--json")
    assert code == 0
    [part] = json.loads(out)["partitions"]
    start = part["start_nodes"][0]
    assert start.startswith("Conv_")  # the name prepare() gave it
    [note] = part["parser_notes"]
    assert f"{start} (no name)" in note and "re-export" in note
    assert part["translate_call"].startswith("runner.translate_onnx_model('")
    # a model whose start/end nodes are named in the file gets no such note
    onnx.save(resnet_like(), str(tmp_path / "named.onnx"))
    code, out, _ = run(capsys, "inspect", str(tmp_path / "named.onnx"), "--arch", "hailo8")
    assert code == 0 and "note:" not in out


def test_unknown_arch_in_a_real_process(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "m.onnx"
    onnx.save(resnet_like(), str(path))
    proc = subprocess.run(
        [sys.executable, "-m", "hailo_ort", "inspect", str(path), "--arch", "hailo8x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "hailo-ort inspect: error: unknown arch 'hailo8x'; valid archs: "
        "hailo8, hailo8r, hailo8l, hailo15h, hailo15m, hailo15l, hailo10h"
    ]


def test_graph_layout_layers_by_depth_without_overlap():
    from hailo_ort.graph import prepare
    from hailo_ort.partition.graphindex import GraphIndex
    from hailo_ort.partition.report_html import layout

    gi = GraphIndex(prepare(yolov8_like()))
    depth, pos = layout(gi)
    for v in range(len(gi.nodes)):
        for u in gi.preds[v]:
            assert depth[u] < depth[v]  # every edge points down
        if gi.preds[v]:
            assert depth[v] == 1 + max(depth[u] for u in gi.preds[v])  # longest path
        else:
            assert depth[v] == 0
    slots = {(depth[v], pos[v]) for v in range(len(gi.nodes))}
    assert len(slots) == len(gi.nodes)  # no two nodes share a place
