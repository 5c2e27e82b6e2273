"""Support tables: shipped data, schema validation, --ops merging, per-node constraint checks."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
from _graphs import Builder
from onnx import TensorProto, helper

import hailo_ort
from hailo_ort.archs import ARCHS
from hailo_ort.errors import ArchError, HailoOrtError, SupportTableError
from hailo_ort.partition.support import FAMILIES, load_support_table


def test_one_table_per_family_shipped_as_package_data():
    assert FAMILIES == ["hailo15", "hailo8"]
    for family in FAMILIES:
        ref = resources.files("hailo_ort.partition").joinpath("tables", f"{family}.json")
        data = json.loads(ref.read_text(encoding="utf-8"))
        assert data["family"] == family
        assert sorted(data["archs"]) == sorted(a.name for a in ARCHS.values() if a.family == family)
        for op, entry in data["ops"].items():
            assert isinstance(entry["supported"], bool), op
            assert entry["note"], f"{family}:{op} has no note of its source"


@pytest.mark.parametrize("arch", list(ARCHS))
def test_every_arch_loads_its_family_table(arch):
    table = load_support_table(arch)
    assert table.family == ARCHS[arch].family
    assert table.ops["Conv"].supported
    assert not table.ops["NonMaxSuppression"].supported


def test_unknown_arch_lists_valid_ones():
    with pytest.raises(ArchError) as exc:
        load_support_table("hailo9")
    assert "hailo8l" in str(exc.value) and "hailo10h" in str(exc.value)


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "not valid JSON"),
        ("[]", "top level must be a JSON object"),
        ('{"ops": {"Conv": {"supported": "yes"}}}', "ops.Conv.supported must be true or false"),
        (
            '{"ops": {"Conv": {"constraints": {"kernel_maximum": 3}}}}',
            "unknown constraint 'kernel_maximum'",
        ),
        (
            '{"ops": {"Conv": {"constraints": {"kernel_max": -1}}}}',
            "kernel_max must be a positive int",
        ),
        ('{"ops": {"Foo": {"note": "x"}}}', "new op needs 'supported'"),
        ('{"opz": {}}', "unknown key(s) ['opz']"),
        ('{"family": "hailo15", "ops": {}}', "is for family 'hailo15'"),
        ('{"schema_version": 7, "ops": {}}', "schema_version 7"),
        ('{"ops": {"Concat": {"constraints": {"axis": [1.5]}}}}', "axis must be"),
    ],
)
def test_malformed_ops_file_names_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "my_ops.json"
    path.write_text(content)
    with pytest.raises(SupportTableError) as exc:
        load_support_table("hailo8", path)
    assert str(path) in str(exc.value)
    assert problem in str(exc.value)
    assert isinstance(exc.value, HailoOrtError)


def test_missing_ops_file(tmp_path):
    with pytest.raises(SupportTableError, match="file not found"):
        load_support_table("hailo8", tmp_path / "absent.json")


def test_override_merges_over_builtin(tmp_path):
    path = tmp_path / "ops.json"
    path.write_text(
        json.dumps(
            {
                "defaults": {"data_ranks": [2, 3, 4]},
                "ops": {
                    "Conv": {"constraints": {"kernel_max": 3, "stride_max": None}},
                    "Erf": {"supported": True},
                },
            }
        )
    )
    base = load_support_table("hailo8")
    table = load_support_table("hailo8", path)
    assert table.ops["Conv"].constraints["kernel_max"] == 3
    assert "stride_max" not in table.ops["Conv"].constraints  # null removes a constraint
    assert table.ops["Conv"].constraints["group"] == base.ops["Conv"].constraints["group"]  # kept
    assert table.ops["Erf"].supported and "Erf" not in base.ops
    assert table.defaults["data_ranks"] == [2, 3, 4]
    assert table.files == ["built-in hailo8.json", str(path)]
    assert str(path) in table.ops["Conv"].note


def _one_node_model(op, inputs, out_shape, in_shape=(1, 8, 16, 16), inits=None, **attrs):
    b = Builder()
    b.shapes["x"] = list(in_shape)
    for name, value in (inits or {}).items():
        b.const(name, value)
    y = b.node(op, ["x", *inputs], "node", list(out_shape), **attrs)
    # a conv first so the graph has a real partition to join
    return b.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))], [y])


def _verdict(model, arch="hailo8"):
    from hailo_ort.partition.graphindex import GraphIndex

    prepared = hailo_ort.graph.prepare(model)
    gi = GraphIndex(prepared)
    table = load_support_table(arch)
    node = next(n for n in gi.nodes if n.name == "node")
    return table.check(node, gi)


@pytest.mark.parametrize(
    "op, inputs, out_shape, inits, attrs, expect",
    [
        ("Softmax", [], (1, 8, 16, 16), None, {"axis": 1}, None),
        ("Softmax", [], (1, 8, 16, 16), None, {"axis": 3}, "axis=3"),
        (
            "Resize",
            ["", "sc"],
            (1, 8, 32, 32),
            {"sc": np.array([1, 1, 2, 2], np.float32)},
            {"mode": "nearest"},
            None,
        ),
        (
            "Resize",
            ["", "sc"],
            (1, 8, 32, 32),
            {"sc": np.array([1, 1, 2, 2], np.float32)},
            {"mode": "cubic"},
            "mode='cubic'",
        ),
        (
            "Resize",
            ["", "sc"],
            (1, 8, 24, 24),
            {"sc": np.array([1, 1, 1.5, 1.5], np.float32)},
            {"mode": "nearest"},
            "integer upscale",
        ),
        ("ReduceMean", [], (1, 8, 1, 1), None, {"axes": [2, 3], "keepdims": 1}, None),
        ("ReduceMean", [], (1, 1, 16, 16), None, {"axes": [1], "keepdims": 1}, None),
        ("ReduceMean", [], (1, 8, 16, 1), None, {"axes": [3], "keepdims": 1}, "axes [3]"),
        ("ReduceMean", [], (1, 8), None, {"axes": [2, 3], "keepdims": 0}, "2-D tensor"),
        ("Concat", ["x"], (1, 16, 16, 16), None, {"axis": 1}, None),
        ("Concat", ["x"], (1, 8, 16, 32), None, {"axis": -1}, "axis=-1"),
        ("Mul", ["k"], (1, 8, 16, 16), {"k": np.ones((1, 8, 1, 1), np.float32)}, {}, None),
        (
            "Mul",
            ["k"],
            (1, 8, 16, 16),
            {"k": np.ones((1, 1, 16, 16), np.float32)},
            {},
            "only scalar or per-channel",
        ),
        ("Div", ["x"], (1, 8, 16, 16), None, {}, "must be a constant"),
        (
            "Transpose",
            [],
            (1, 16, 16, 8),
            None,
            {"perm": [0, 2, 3, 1]},
            "unsupported op: Transpose",
        ),
        ("Reshape", ["shape"], (1, 2048), {"shape": np.array([1, -1], np.int64)}, {}, None),
        ("Reshape", ["shape"], (1, 8, 256), {"shape": np.array([1, 8, -1], np.int64)}, {}, "3-D"),
        ("MaxPool", [], (1, 8, 16, 16), None, {"kernel_shape": [5, 5], "pads": [2, 2, 2, 2]}, None),
        ("Erf", [], (1, 8, 16, 16), None, {}, "not in the hailo8 support table"),
    ],
)
def test_constraints(op, inputs, out_shape, inits, attrs, expect):
    model = _one_node_model(op, inputs, out_shape, inits=inits, **attrs)
    verdict = _verdict(model)
    if expect is None:
        assert verdict is None
    else:
        assert verdict is not None and expect in verdict[1], verdict


def test_grouped_conv_limits():
    b = Builder()
    b.shapes["x"] = [1, 8, 8, 8]
    dw = b.conv("x", "node", 8, group=8)
    m = b.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 8])], [dw])
    assert _verdict(m) is None  # depthwise
    b = Builder()
    b.shapes["x"] = [1, 8, 8, 8]
    g2 = b.conv("x", "node", 8, group=2)
    m = b.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 8])], [g2])
    assert "group=2" in _verdict(m)[1]


def test_layer_norm_differs_between_families():
    b = Builder()
    b.shapes["x"] = [1, 8, 8, 8]
    y = b.node(
        "LayerNormalization",
        ["x", b.const("g", np.ones(8, np.float32)), b.const("bt", np.zeros(8, np.float32))],
        "node",
        [1, 8, 8, 8],
        axis=-1,
    )
    m = b.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 8])], [y])
    assert _verdict(m, "hailo8") is not None
    assert _verdict(m, "hailo15h") is None
