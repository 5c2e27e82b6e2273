"""Constant folding: the YOLO anchor chain, limits, robustness, dead code, numerics."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from hailo_ort.graph import prepare
from hailo_ort.zoo import yolov8n


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _model(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _f(name, dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def _i64(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def test_yolov8n_anchor_chain_folds_and_outputs_match():
    original = yolov8n()
    prepared = prepare(original)
    ops = {n.op_type for n in prepared.model.graph.node}
    for op in ("Shape", "Gather", "Range", "Expand", "ConstantOfShape", "Cast"):
        assert op not in ops, op
    folded = set(prepared.folded)
    for i in range(3):
        assert f"/model.22/anchors.{i}/Shape" in folded
        assert f"/model.22/anchors.{i}/Range" in folded
        assert f"/model.22/anchors.{i}/Expand" in folded
    assert "/model.22/Transpose_anchors" in folded
    # The network itself is untouched.
    names = {n.name for n in prepared.model.graph.node}
    assert "/model.22/cv2.0/cv2.0.2/Conv" in names and "/model.22/dfl/conv/Conv" in names
    assert not folded & names
    onnx.checker.check_model(prepared.model, full_check=True)
    x = np.random.default_rng(1).random((1, 3, 160, 160), dtype=np.float32)
    expected = _run(original, {"images": x})[0]
    got = _run(prepared.model, {"images": x})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)


def test_shape_with_start_end_and_size_fold():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape", start=1, end=-1),
        helper.make_node("Size", ["x"], ["n"], name="size"),
        helper.make_node("Cast", ["s"], ["sf"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Cast", ["n"], ["nf"], name="cast_n", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["sf", "nf"], ["k"], name="mul"),
        helper.make_node("Add", ["x", "k"], ["y"], name="add"),
    ]
    model = _model(nodes, [_f("x", [2, 3, 5, 2])], [_f("y", None)])
    prepared = prepare(model)
    assert [n.name for n in prepared.model.graph.node] == ["add"]
    assert sorted(prepared.folded) == ["cast", "cast_n", "mul", "shape", "size"]
    k = {t.name: numpy_helper.to_array(t) for t in prepared.model.graph.initializer}["k"]
    np.testing.assert_array_equal(k, np.array([3 * 60, 5 * 60], np.float32))
    x = np.random.default_rng(0).random((2, 3, 5, 2), dtype=np.float32)
    np.testing.assert_allclose(_run(prepared.model, {"x": x})[0], x + k)


def test_constant_nodes_become_initializers():
    nodes = [
        helper.make_node(
            "Constant",
            [],
            ["c"],
            name="const",
            value=numpy_helper.from_array(np.array([1.0, 2.0], np.float32)),
        ),
        helper.make_node("Constant", [], ["ci"], name="const_ints", value_ints=[2, 1]),
        helper.make_node("Reshape", ["c", "ci"], ["c2"], name="reshape"),
        helper.make_node("Mul", ["x", "c2"], ["y"], name="mul"),
    ]
    model = _model(nodes, [_f("x", [3, 2, 1])], [_f("y", None)])
    prepared = prepare(model)
    assert [n.op_type for n in prepared.model.graph.node] == ["Mul"]
    assert set(prepared.folded) == {"const", "const_ints", "reshape"}
    assert prepared.shapes["y"] == [3, 2, 1]


def test_huge_constant_not_produced():
    side = 2100  # 2100*2100 float32 = 17.6 MB > 16 MB
    nodes = [
        helper.make_node(
            "ConstantOfShape",
            ["shape"],
            ["big"],
            name="big",
            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.5]),
        ),
        helper.make_node("ReduceSum", ["big"], ["total"], name="sum", keepdims=0),
        helper.make_node("Add", ["x", "total"], ["y"], name="add"),
    ]
    model = _model(nodes, [_f("x", [1])], [_f("y", None)], [_i64("shape", [side, side])])
    prepared = prepare(model)
    assert "big" not in prepared.folded
    assert {n.name for n in prepared.model.graph.node} == {"big", "sum", "add"}
    assert all(t.ByteSize() < 1024 for t in prepared.model.graph.initializer)
    # A small one of the same shape of chain folds completely.
    small = _model(nodes, [_f("x", [1])], [_f("y", None)], [_i64("shape", [20, 20])])
    prepared_small = prepare(small)
    assert [n.name for n in prepared_small.model.graph.node] == ["add"]
    x = np.zeros(1, np.float32)
    np.testing.assert_allclose(_run(prepared_small.model, {"x": x})[0], [200.0])


def test_failing_node_is_left_alone():
    # Gather with an out-of-range constant index cannot be evaluated: prepare keeps the node.
    nodes = [
        helper.make_node("Gather", ["table", "idx"], ["g"], name="gather", axis=0),
        helper.make_node("Add", ["x", "g"], ["y"], name="add"),
    ]
    inits = [numpy_helper.from_array(np.ones((3, 2), np.float32), "table"), _i64("idx", [7])]
    prepared = prepare(_model(nodes, [_f("x", [1, 2])], [_f("y", None)], inits))
    assert "gather" not in prepared.folded
    assert [n.name for n in prepared.model.graph.node] == ["gather", "add"]


def test_dead_nodes_and_initializers_removed_but_fold_false_keeps_all():
    w = numpy_helper.from_array(np.ones((2, 2), np.float32), "w")
    unused = numpy_helper.from_array(np.ones(5, np.float32), "unused")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
        helper.make_node("Relu", ["x"], ["dead1"], name="dead_relu"),
        helper.make_node("Neg", ["dead1"], ["dead2"], name="dead_neg"),
    ]
    model = _model(nodes, [_f("x", [1, 2])], [_f("y", None)], [w, unused])
    prepared = prepare(model)
    assert [n.name for n in prepared.model.graph.node] == ["mm"]
    assert [t.name for t in prepared.model.graph.initializer] == ["w"]
    kept = prepare(model, fold=False)
    assert len(kept.model.graph.node) == 3 and len(kept.model.graph.initializer) == 2
    assert kept.folded == []


def test_quantize_dequantize_and_random_not_folded():
    q = numpy_helper.from_array(np.array([[1, -2], [3, 4]], np.int8), "wq")
    scale = numpy_helper.from_array(np.array(0.5, np.float32), "scale")
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "scale"], ["w"], name="dq"),
        helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
        helper.make_node("RandomNormal", [], ["r"], name="rand", shape=[1, 2]),
        helper.make_node("Add", ["y", "r"], ["out"], name="add"),
    ]
    prepared = prepare(_model(nodes, [_f("x", [1, 2])], [_f("out", None)], [q, scale]))
    assert [n.name for n in prepared.model.graph.node] == ["dq", "mm", "rand", "add"]


def test_graph_output_produced_by_constant_chain_is_kept():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Relu", ["x"], ["y"], name="relu"),
    ]
    model = _model(
        nodes,
        [_f("x", [1, 4])],
        [_f("y", None), helper.make_tensor_value_info("s", TensorProto.INT64, None)],
    )
    prepared = prepare(model)
    assert [n.name for n in prepared.model.graph.node] == ["shape", "relu"]
    onnx.checker.check_model(prepared.model)


def test_subgraph_reads_keep_outer_tensors_alive():
    # A tensor read only inside an If branch (outer scope) must survive dead-code removal.
    then_graph = helper.make_graph(
        [helper.make_node("Identity", ["outer"], ["t_out"], name="then_id")],
        "then",
        [],
        [_f("t_out", [1, 2])],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Neg", ["outer"], ["e_out"], name="else_neg")],
        "else",
        [],
        [_f("e_out", [1, 2])],
    )
    nodes = [
        helper.make_node("Relu", ["x"], ["outer"], name="relu"),
        helper.make_node(
            "If", ["cond"], ["y"], name="if", then_branch=then_graph, else_branch=else_graph
        ),
    ]
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    model = _model(nodes, [_f("x", [1, 2]), cond], [_f("y", None)])
    prepared = prepare(model)
    assert [n.name for n in prepared.model.graph.node] == ["relu", "if"]
    if_node = prepared.model.graph.node[1]
    assert [a.SerializeToString() for a in if_node.attribute] == [
        a.SerializeToString() for a in model.graph.node[1].attribute
    ]
    x = np.array([[-1.0, 2.0]], np.float32)
    for flag, expected in ((True, [[0.0, 2.0]]), (False, [[0.0, -2.0]])):
        got = _run(prepared.model, {"x": x, "cond": np.array(flag)})[0]
        np.testing.assert_allclose(got, expected)
