"""FLOPs and parameter counts against hand-computed values (multiply-add = 2 FLOPs)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hailo_ort.graph import prepare


def _prepared(nodes, inputs, outputs, inits):
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return prepare(model)


def _w(name, *dims):
    return numpy_helper.from_array(np.ones(dims, np.float32), name)


def _f(name, dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def test_conv_flops_with_bias_groups_dilation():
    nodes = [
        # 3→16, 3×3, pad 1: out 1×16×8×8 = 1024 values, each 3·3·3 = 27 multiply-adds + bias.
        helper.make_node("Conv", ["x", "w1", "b1"], ["y1"], name="conv", pads=[1] * 4),
        # depthwise on 16 channels (groups=16), 3×3, dilation 2, no pad: 8 - 4 = 4 → 1×16×4×4.
        helper.make_node("Conv", ["y1", "w2"], ["y2"], name="dw", group=16, dilations=[2, 2]),
        # stride 2, 1×1, 16→8: out 1×8×2×2 = 32 values × 16 multiply-adds.
        helper.make_node("Conv", ["y2", "w3"], ["y3"], name="pw", strides=[2, 2]),
    ]
    inits = [_w("w1", 16, 3, 3, 3), _w("b1", 16), _w("w2", 16, 1, 3, 3), _w("w3", 8, 16, 1, 1)]
    p = _prepared(nodes, [_f("x", [1, 3, 8, 8])], [_f("y3", None)], inits)
    assert p.shapes["y2"] == [1, 16, 4, 4] and p.shapes["y3"] == [1, 8, 2, 2]
    assert p.node_flops["conv"] == 2 * 1024 * 27 + 1024
    assert p.node_flops["dw"] == 2 * 256 * 9
    assert p.node_flops["pw"] == 2 * 32 * 16
    assert p.node_params == {"conv": 16 * 27 + 16, "dw": 16 * 9, "pw": 128}
    assert p.total_flops == 2 * 1024 * 27 + 1024 + 2 * 256 * 9 + 2 * 32 * 16


def test_conv_transpose_flops():
    # Every input value (1·2·4·4 = 32) scatters into 3 output channels × 3×3 taps.
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="up", strides=[2, 2])]
    p = _prepared(nodes, [_f("x", [1, 2, 4, 4])], [_f("y", None)], [_w("w", 2, 3, 3, 3)])
    assert p.shapes["y"] == [1, 3, 9, 9]
    assert p.node_flops["up"] == 2 * 32 * 27


def test_gemm_and_matmul_flops():
    nodes = [
        # A^T: [5,2] → M=2, K=5; B [5,7] → N=7; + C on 2×7 outputs.
        helper.make_node("Gemm", ["a", "b", "c"], ["g"], name="gemm", transA=1),
        # batched MatMul [3,4,5] × [5,6] → 3·4·6 outputs × K=5.
        helper.make_node("MatMul", ["m", "k"], ["mm"], name="matmul"),
    ]
    inits = [_w("b", 5, 7), _w("c", 7), _w("k", 5, 6)]
    p = _prepared(
        nodes, [_f("a", [5, 2]), _f("m", [3, 4, 5])], [_f("g", None), _f("mm", None)], inits
    )
    assert p.node_flops["gemm"] == 2 * 2 * 7 * 5 + 14
    assert p.node_flops["matmul"] == 2 * 72 * 5
    assert p.node_params["gemm"] == 35 + 7


def test_elementwise_pooling_reduction_and_data_movement():
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, -1])
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Softmax", ["p"], ["s"], name="softmax", axis=1),
        helper.make_node("ReduceMean", ["s"], ["m"], name="mean", keepdims=1),
        helper.make_node("Sum", ["s", "s", "m"], ["sum3"], name="sum3"),
        helper.make_node("BatchNormalization", ["x", "g", "bb", "mu", "var"], ["bn"], name="bn"),
        helper.make_node("Reshape", ["sum3", "shape"], ["flat"], name="reshape"),
        helper.make_node("GlobalAveragePool", ["bn"], ["gap"], name="gap"),
    ]
    inits = [shape, _w("g", 3), _w("bb", 3), _w("mu", 3), _w("var", 3)]
    p = _prepared(nodes, [_f("x", [1, 3, 8, 8])], [_f("flat", None), _f("gap", None)], inits)
    assert p.node_flops["relu"] == 192
    assert p.node_flops["pool"] == 48 * 4
    assert p.node_flops["softmax"] == 3 * 48
    assert p.node_flops["mean"] == 48
    assert p.node_flops["sum3"] == 2 * 48
    assert p.node_flops["bn"] == 2 * 192
    assert p.node_flops["gap"] == 192
    assert p.node_flops["reshape"] == 0
    assert p.node_params["reshape"] == 0  # int64 shape tensors are not parameters
    assert p.node_params["bn"] == 12


def test_every_node_has_flops_and_params_entries():
    p = prepare("example:mobilenet_v2")
    names = [n.name for n in p.model.graph.node]
    assert set(p.node_flops) == set(names) == set(p.node_params)
    by_op = {}
    for n in p.model.graph.node:
        by_op.setdefault(n.op_type, []).append(p.node_flops[n.name])
    assert all(f > 0 for f in by_op["Conv"]) and all(f > 0 for f in by_op["Clip"])
    assert by_op["Flatten"] == [0]
    onnx.checker.check_model(p.model)


def test_resize_flops_follow_mode():
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [
        helper.make_node("Resize", ["x", "", "scales"], ["n"], name="nearest", mode="nearest"),
        helper.make_node("Resize", ["x", "", "scales"], ["l"], name="linear", mode="linear"),
    ]
    p = _prepared(nodes, [_f("x", [1, 2, 4, 4])], [_f("n", None), _f("l", None)], [scales])
    assert p.shapes["n"] == [1, 2, 8, 8]
    # nearest: one index computation per output value; linear over 2 axes: 4 taps, 2 FLOPs each.
    assert p.node_flops["nearest"] == 128
    assert p.node_flops["linear"] == 128 * 2 * 4
