"""The partitioner on graphs with a known right answer (Hailo's own cuts, HAILO_FACTS §4)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from _graphs import (
    YOLO_HEAD_CONVS,
    Builder,
    middle_unsupported,
    normalised_classifier,
    resnet_like,
    yolov8_like,
)
from _partition_checks import boundary, contraction_has_cycle, weakly_connected
from conftest import third_party_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import hailo_ort
from hailo_ort.errors import InputShapeError
from hailo_ort.partition.partitioner import partition_model
from hailo_ort.partition.support import load_support_table


def check_consistent(result) -> None:
    """Every node placed exactly once, every CPU node has a reason, the contraction is acyclic,
    and each partition's declared boundary matches the graph."""
    model = result.prepared.model
    all_nodes = [n.name for n in model.graph.node]
    placed = [n for p in result.partitions for n in p.nodes] + [c.name for c in result.cpu_nodes]
    assert sorted(placed) == sorted(all_nodes)
    for c in result.cpu_nodes:
        assert c.reason and c.reason.strip(), c
    assert not contraction_has_cycle(model, [p.nodes for p in result.partitions])
    for p in result.partitions:
        assert weakly_connected(model, p.nodes)
        ins, outs = boundary(model, p.nodes)
        assert {t.name for t in p.inputs} == ins
        assert {t.name for t in p.outputs} == outs
        producers = {o: n.name for n in model.graph.node for o in n.output}
        assert set(p.end_nodes) == {producers[t] for t in outs}
        consumers_of_inputs = {
            n.name for n in model.graph.node if n.name in set(p.nodes) and set(n.input) & ins
        }
        assert set(p.start_nodes) == consumers_of_inputs
        order = {n.name: i for i, n in enumerate(model.graph.node)}
        assert [order[n] for n in p.nodes] == sorted(order[n] for n in p.nodes)


def test_yolov8_device_part_ends_at_the_six_head_convs():
    result = hailo_ort.inspect(yolov8_like(), arch="hailo8l")
    check_consistent(result)
    assert len(result.partitions) == 1
    part = result.partitions[0]
    assert sorted(part.end_nodes) == sorted(YOLO_HEAD_CONVS)
    assert part.start_nodes == ["/model.0/conv/Conv"]
    assert [t.name for t in part.inputs] == ["images"]
    assert part.inputs[0].shape == [1, 3, 64, 64]
    # partition outputs are exactly the six conv outputs (box 64 channels, class nc channels)
    conv_out = {
        n.output[0]: n.name for n in result.prepared.model.graph.node if n.name in YOLO_HEAD_CONVS
    }
    assert {t.name for t in part.outputs} == set(conv_out)
    channels = sorted(t.shape[1] for t in part.outputs)
    assert channels == [4, 4, 4, 64, 64, 64]
    cpu = {c.name: c.reason for c in result.cpu_nodes}
    # the per-scale Concat(cv2, cv3) is not on the device, for the value-range reason
    for name in ("/model.22/Concat", "/model.22/Concat_1", "/model.22/Concat_2"):
        assert "value ranges" in cpu[name]
    # the DFL Softmax/Conv island is supported but not worth its own partition
    assert cpu["/model.22/dfl/conv/Conv"].startswith("too small a partition")
    assert 0.9 < result.device_flops_share < 1.0


@pytest.mark.parametrize("arch", ["hailo8", "hailo15h", "hailo10h"])
def test_classifier_goes_whole_except_final_softmax(arch):
    result = hailo_ort.inspect(resnet_like(), arch=arch)
    check_consistent(result)
    assert len(result.partitions) == 1
    assert [c.name for c in result.cpu_nodes] == ["softmax"]
    assert result.cpu_nodes[0].reason.startswith("post-processing")
    assert result.partitions[0].end_nodes == ["fc"]
    assert result.partitions[0].start_nodes == ["conv1"]


def test_normalisation_candidate_detected():
    result = hailo_ort.inspect(normalised_classifier(), arch="hailo8")
    check_consistent(result)
    assert len(result.normalization) == 1
    nm = result.normalization[0]
    assert nm.mean == pytest.approx([123.675, 116.28, 103.53], rel=1e-5)
    assert nm.std == pytest.approx([58.395, 57.12, 57.375], rel=1e-5)
    assert nm.nodes == ["sub_mean", "div_std"]
    assert nm.model_script().startswith("normalization([123.675, 116.28, 103.53]")
    cpu = {c.name: c.reason for c in result.cpu_nodes}
    assert set(cpu) == {"cast", "to_nchw", "sub_mean", "div_std"}
    assert all(r.startswith("pre-processing") for r in cpu.values())
    assert result.partitions[0].start_nodes == ["conv1"]


def test_scale_and_shift_normalisation_composes():
    """x * (1/255) then (x - 0.5) / 0.25 is mean 127.5, std 63.75 on the raw input."""
    b = Builder()
    b.shapes["x"] = [1, 3, 16, 16]
    y = b.node("Mul", ["x", b.const("k", np.array(1 / 255, np.float32))], "scale", [1, 3, 16, 16])
    y = b.node("Sub", [y, b.const("m", np.array(0.5, np.float32))], "shift", [1, 3, 16, 16])
    y = b.node("Div", [y, b.const("s", np.array(0.25, np.float32))], "div", [1, 3, 16, 16])
    y = b.node("Relu", [b.conv(y, "conv", 8)], "relu", [1, 8, 16, 16])
    m = b.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])], [y])
    result = hailo_ort.inspect(m, arch="hailo8")
    [nm] = result.normalization
    assert nm.input == "x"
    assert nm.mean == pytest.approx([127.5], rel=1e-5)
    assert nm.std == pytest.approx([63.75], rel=1e-5)


def test_pure_scale_normalisation_has_mean_zero_not_minus_zero():
    """x * (1/255): mean is -0/a = -0.0 in IEEE arithmetic; the script must say 0, not -0."""
    b = Builder()
    b.shapes["x"] = [1, 3, 16, 16]
    y = b.node("Mul", ["x", b.const("k", np.array(1 / 255, np.float32))], "scale", [1, 3, 16, 16])
    y = b.node("Relu", [b.conv(y, "conv", 8)], "relu", [1, 8, 16, 16])
    m = b.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])], [y])
    [nm] = hailo_ort.inspect(m, arch="hailo8").normalization
    assert nm.model_script() == "normalization([0], [255])"


def test_unsupported_op_in_the_middle_gives_hef_cpu_hef():
    model = middle_unsupported()
    result = hailo_ort.inspect(model, arch="hailo8")
    check_consistent(result)
    assert len(result.partitions) == 2
    first, second = result.partitions
    assert "front.conv1" in first.nodes and "back.conv3" in second.nodes
    cpu = {c.name: c.reason for c in result.cpu_nodes}
    assert list(cpu) == ["middle.unsupported"]
    assert cpu["middle.unsupported"].startswith("unsupported op: Erf")
    # the residual Add reads the first partition's output directly: two inputs to partition 1
    assert {t.name for t in second.inputs} == {
        "middle.unsupported_output_0",
        "front.relu2_output_0",
    }


def test_ops_override_changes_placement(tmp_path):
    ops = tmp_path / "ops.json"
    ops.write_text(json.dumps({"ops": {"Erf": {"supported": True, "note": "our DFC maps Erf"}}}))
    result = hailo_ort.inspect(middle_unsupported(), arch="hailo8", ops=ops)
    check_consistent(result)
    assert len(result.partitions) == 1 and result.cpu_nodes == []
    # and the other way round: forbid MaxPool on a classifier → it splits around it
    ops.write_text(json.dumps({"ops": {"MaxPool": {"supported": False}}}))
    result = hailo_ort.inspect(resnet_like(), arch="hailo8", ops=ops)
    check_consistent(result)
    cpu = {c.name: c.reason for c in result.cpu_nodes}
    assert cpu["maxpool"].startswith("unsupported op: MaxPool")
    assert "maxpool" not in {n for p in result.partitions for n in p.nodes}


def test_cycle_trap_is_avoided():
    """A → Erf → B and A → B directly: putting A and B in one partition would be a cycle."""
    b = Builder()
    b.shapes["x"] = [1, 4, 16, 16]
    a = b.conv("x", "A", 16)
    u = b.node("Erf", [a], "U", [1, 16, 16, 16])
    s = b.node("Add", [a, u], "B", [1, 16, 16, 16])
    out = b.conv(s, "C", 16)
    m = b.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16, 16])], [out])
    result = hailo_ort.inspect(m, arch="hailo8", min_partition_share=0.0)
    check_consistent(result)
    where = result.placement
    assert where["U"] is None
    assert where["A"] != where["B"]


def test_dynamic_shape_and_constraint_reasons():
    b = Builder()
    b.shapes["x"] = [1, 8, 16, 16]
    y = b.conv("x", "conv", 8)
    big = b.conv(y, "bigk", 8, k=13)  # kernel 13 > 11
    cat = b.node("Concat", [big, y], "cat_h", [1, 8, 32, 16], axis=2)  # Concat over H
    m = b.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])], [cat])
    result = hailo_ort.inspect(m, arch="hailo8")
    cpu = {c.name: c.reason for c in result.cpu_nodes}
    assert "kernel 13x13 exceeds 11" in cpu["bigk"]
    assert cpu["cat_h"].startswith("constraint violated") and "axis=2" in cpu["cat_h"]


# --- random graphs: the invariants hold whatever the mix of ops ---------------------------


@st.composite
def random_graphs(draw):
    count = draw(st.integers(min_value=2, max_value=30))
    b = Builder()
    b.shapes["x"] = b.shapes["y"] = [1, 4, 4, 4]
    tensors = ["x", "y"]
    for i in range(count):
        kind = draw(st.sampled_from(["conv", "relu", "add", "add", "erf", "erf", "sigmoid"]))
        src = tensors[draw(st.integers(0, len(tensors) - 1))]
        if kind == "conv":
            t = b.conv(src, f"n{i}", 4, k=1)
        elif kind == "add":
            other = tensors[draw(st.integers(0, len(tensors) - 1))]
            t = b.node("Add", [src, other], f"n{i}", [1, 4, 4, 4])
        else:
            op = {"relu": "Relu", "erf": "Erf", "sigmoid": "Sigmoid"}[kind]
            t = b.node(op, [src], f"n{i}", [1, 4, 4, 4])
        tensors.append(t)
    used = {t for n in b.nodes for t in n.input}
    outputs = [t for t in tensors[2:] if t not in used]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 4, 4]) for n in "xy"]
    b.node("Identity", ["y"], "keep_y", [1, 4, 4, 4])
    return b.model(inputs, [*outputs, "keep_y_output_0"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs(), st.sampled_from([0.0, 0.05]))
def test_random_graphs_keep_invariants(model, share):
    prepared = hailo_ort.graph.prepare(model)
    table = load_support_table("hailo8")
    plan = partition_model(prepared, table, min_partition_share=share)
    parts = [p.nodes for p in plan.partitions]
    assert not contraction_has_cycle(prepared.model, parts)
    assert all(weakly_connected(prepared.model, p) for p in parts)
    names = sorted(n.name for n in prepared.model.graph.node)
    assert sorted([n for p in parts for n in p] + [c.name for c in plan.cpu_nodes]) == names
    assert all(c.reason for c in plan.cpu_nodes)
    erf = {n.name for n in prepared.model.graph.node if n.op_type == "Erf"}
    assert not erf & {n for p in parts for n in p}


# --- real third-party models ---------------------------------------------------------------


def test_pplcnet_classifier_mostly_on_device():
    path = third_party_model("pplcnet")
    with pytest.raises(InputShapeError):
        hailo_ort.inspect(str(path), arch="hailo8l")  # dynamic batch
    result = hailo_ort.inspect(str(path), arch="hailo8l", input_shapes=["x=1,3,224,224"])
    check_consistent(result)
    assert len(result.partitions) == 1
    assert result.device_flops_share > 0.95
    assert {c.op_type for c in result.cpu_nodes} <= {"Softmax", "Identity"}


def test_picodet_device_part_ends_before_reshape_transpose_tail():
    path = third_party_model("picodet")
    result = hailo_ort.inspect(str(path), arch="hailo8")
    check_consistent(result)
    assert len(result.prepared.model.graph.node) > 500
    [part] = result.partitions
    ops = {n.name: n.op_type for n in result.prepared.model.graph.node}
    assert {ops[n] for n in part.end_nodes} == {"Conv"}
    tail = [n for n, op in ops.items() if op in ("Reshape", "Transpose")]
    assert len(tail) == 16
    assert not set(tail) & set(part.nodes)
    assert result.device_flops_share > 0.95


def test_silero_vad_stays_mostly_on_cpu_with_reasons():
    path = third_party_model("silero_vad")
    result = hailo_ort.inspect(
        str(path), arch="hailo15h", input_shapes={"input": [1, 512], "state": [2, 1, 128]}
    )
    check_consistent(result)
    cpu = {c.op_type: c.reason for c in result.cpu_nodes}
    assert "If" in cpu and cpu["If"].startswith("unsupported op")
    assert result.device_flops_share < 0.5


def test_model_proto_input_is_not_modified():
    model = resnet_like()
    before = model.SerializeToString()
    hailo_ort.inspect(model, arch="hailo8")
    assert model.SerializeToString() == before
    assert isinstance(onnx.load_from_string(before), onnx.ModelProto)


def test_constant_nodes_left_by_prepare_go_with_their_consumers():
    """If stage 1 leaves Constant nodes, they join their consumers' partition, never a boundary."""
    from onnx import numpy_helper, shape_inference

    from hailo_ort.graph.prepared import PreparedModel

    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    nodes = [
        helper.make_node("Constant", [], ["w"], name="const_w", value=w),
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
    )
    model = shape_inference.infer_shapes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    )
    shapes = {"x": [1, 3, 8, 8], "c": [1, 4, 8, 8], "y": [1, 4, 8, 8], "w": [4, 3, 1, 1]}
    prepared = PreparedModel(
        model,
        {"x": [1, 3, 8, 8]},
        node_flops={"conv": 3072, "relu": 256},
        node_params={"conv": 12},
        shapes=shapes,
        dtypes=dict.fromkeys(shapes, "float32"),
    )
    result = hailo_ort.inspect(prepared, arch="hailo8")
    [part] = result.partitions
    assert part.nodes == ["const_w", "conv", "relu"]
    assert [t.name for t in part.inputs] == ["x"]
    assert part.start_nodes == ["conv"] and part.end_nodes == ["relu"]
    html = result.to_html()
    assert html.count("<rect") == 2  # the Constant node is not drawn


def test_partitions_are_connected_after_trimming():
    """Two inputs, a conv stack on each, joined by a Concat whose only device consumer ``d`` must
    leave (``d`` also reads the Concat through an unsupported op: cycle avoidance, then too small).
    The Concat is then trimmed as a tail, which leaves two separate pieces → two partitions."""
    b = Builder()
    b.shapes["a"] = b.shapes["b"] = [1, 3, 16, 16]
    xa = b.node("Relu", [b.conv("a", "a.conv", 8)], "a.relu", [1, 8, 16, 16])
    xb = b.node("Relu", [b.conv("b", "b.conv", 8)], "b.relu", [1, 8, 16, 16])
    cat = b.node("Concat", [xa, xb], "join", [1, 16, 16, 16], axis=1)
    u = b.node("Erf", [cat], "u", [1, 16, 16, 16])
    d = b.node("Add", [cat, u], "d", [1, 16, 16, 16])
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 16, 16]) for n in "ab"]
    result = hailo_ort.inspect(b.model(inputs, [d]), arch="hailo8")
    check_consistent(result)
    assert sorted(sorted(p.nodes) for p in result.partitions) == [
        ["a.conv", "a.relu"],
        ["b.conv", "b.relu"],
    ]
    cpu = {c.name: c.reason for c in result.cpu_nodes}
    assert cpu["join"].startswith("post-processing")
    assert cpu["d"].startswith("cycle avoidance")


def test_node_order_in_the_file_does_not_matter():
    prepared = hailo_ort.graph.prepare(yolov8_like())
    reference = hailo_ort.inspect(prepared, arch="hailo8")
    shuffled_nodes = list(prepared.model.graph.node)
    np.random.default_rng(1).shuffle(shuffled_nodes)
    del prepared.model.graph.node[:]
    prepared.model.graph.node.extend(shuffled_nodes)
    result = hailo_ort.inspect(prepared, arch="hailo8")

    def summary(res):
        return [
            (sorted(p.nodes), sorted(p.start_nodes), sorted(p.end_nodes), p.flops, p.params)
            for p in res.partitions
        ]

    assert summary(result) == summary(reference)
    # nodes are listed in a topological order of the shuffled file
    position = {n: i for i, n in enumerate(result.partitions[0].nodes)}
    for node in result.prepared.model.graph.node:
        if node.name in position:
            for t in node.input:
                producer = next((m for m in shuffled_nodes if t in m.output), None)
                if producer is not None and producer.name in position:
                    assert position[producer.name] < position[node.name]
    assert sorted(c.name for c in result.cpu_nodes) == sorted(c.name for c in reference.cpu_nodes)
