"""Small models for the runtime tests: each with HailoOp nodes and the same model in plain ONNX.

The HailoOp models are made by the real stages: the device part is compiled by the emulate
backend (``hailo_ort.compile.emulate``) and embedded by ``hailo_ort.hailoop.embed``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

from hailo_ort.compile.emulate import compile_partition_emulated
from hailo_ort.hailoop import embed, strip_fallback
from hailo_ort.hailoop.types import CompiledPartition
from hailo_ort.partition.types import Partition, TensorSpec

OPSET = 17
IR_VERSION = 10
PRODUCER = "hailo-ort-tests"
ARCH = "hailo8l"


def make_model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    initializers: list[onnx.TensorProto] | None = None,
) -> onnx.ModelProto:
    """A plain model (opset 17, IR 10) with every node named, as a prepared model has them."""
    for i, node in enumerate(nodes):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    graph = helper.make_graph(nodes, "hailo_test", inputs, outputs, initializer=initializers or [])
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER,
    )
    return onnx.shape_inference.infer_shapes(model)


def compile_part(
    plain: onnx.ModelProto,
    index: int,
    nodes: list[onnx.NodeProto],
    inputs: list[str],
    outputs: list[str],
    calib: list[dict[str, np.ndarray]],
) -> CompiledPartition:
    """Compile the ``nodes`` of ``plain`` (boundary ``inputs`` → ``outputs``) with the emulate
    backend; quantization ranges come from running ``plain`` on ``calib`` (its inputs)."""
    shapes = {
        vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
        for vi in [*plain.graph.input, *plain.graph.value_info, *plain.graph.output]
    }
    partition = Partition(
        index=index,
        nodes=[n.name for n in nodes],
        start_nodes=[nodes[0].name],
        end_nodes=[nodes[-1].name],
        inputs=[TensorSpec(t, shapes[t], "float32") for t in inputs],
        outputs=[TensorSpec(t, shapes[t], "float32") for t in outputs],
    )
    return compile_partition_emulated(plain, partition, calib, ARCH)


def as_hef_only(cp: CompiledPartition, hef: bytes) -> CompiledPartition:
    """The same partition as the DFC would deliver it: a HEF payload and no emulation model."""
    return dataclasses.replace(cp, backend="dfc", hef=hef, emulation=None, report={})


def hailo_model(
    plain: onnx.ModelProto,
    compiled: list[CompiledPartition],
    with_fallback: bool = True,
) -> onnx.ModelProto:
    """``plain`` with each compiled partition embedded as a HailoOp node (portable flavour);
    without the float fallback bodies when ``with_fallback`` is False."""
    model = embed(plain, compiled, flavour="portable")
    return model if with_fallback else strip_fallback(model)


def conv_part(cin: int, cout: int, hw: int, seed: int, name: str) -> onnx.ModelProto:
    """A float Conv(3x3, pad 1) + Relu model: input ``in`` [1,cin,hw,hw], output ``out``."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((cout, cin, 3, 3)) * 0.3).astype(np.float32)
    b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["in", f"{name}_w", f"{name}_b"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["out"]),
        ],
        name,
        [helper.make_tensor_value_info("in", TensorProto.FLOAT, [1, cin, hw, hw])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, cout, hw, hw])],
        initializer=[
            numpy_helper.from_array(w, f"{name}_w"),
            numpy_helper.from_array(b, f"{name}_b"),
        ],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )


def inline(part: onnx.ModelProto, outer_in: list[str], outer_out: list[str], prefix: str):
    """The nodes and initializers of ``part``, renamed into the outer graph."""
    rename = dict(zip([i.name for i in part.graph.input], outer_in))
    rename.update(zip([o.name for o in part.graph.output], outer_out))

    def r(name: str) -> str:
        return rename.get(name, f"{prefix}{name}")

    nodes = []
    for n in part.graph.node:
        m = onnx.NodeProto()
        m.CopyFrom(n)
        del m.input[:]
        del m.output[:]
        m.input.extend(r(x) for x in n.input)
        m.output.extend(r(y) for y in n.output)
        m.name = f"{prefix}{n.name or n.op_type}"
        nodes.append(m)
    inits = []
    for i in part.graph.initializer:
        j = onnx.TensorProto()
        j.CopyFrom(i)
        j.name = r(i.name)
        inits.append(j)
    return nodes, inits


def fixture_hef() -> bytes:
    """A real HEF (Hailo-8, from ../shared/fixtures): a payload the HEF reader accepts."""
    from conftest import shared_fixture

    return shared_fixture("hef/arcface_mobilefacenet_hailo8_v1.hef").read_bytes()


def calib(shape: list[int], seed: int, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape, dtype=np.float32) * scale).astype(np.float32)


def cnn(
    with_fallback: bool = True,
    with_emulation: bool = True,
    hef: bytes | None = None,
    batch: int = 1,
):
    """x[1,3,8,8] → Mul 2 (CPU) → HailoOp(Conv+Relu → [1,4,8,8]) → ReduceMean (CPU) → y[1,4].

    Outputs: ``y`` and the device output ``feat``. Returns (hailo model, plain model). The
    device part is calibrated on ``calib([1, 3, 8, 8], 7)``. With ``batch`` > 1 the graph
    carries ``batch`` frames; the device streams stay one frame each (compiled at batch 1).
    Without emulation and with ``hef`` the HailoOp carries only that HEF (as from the DFC).
    """

    def build(n: int) -> tuple[onnx.ModelProto, list[onnx.NodeProto]]:
        part = conv_part(3, 4, 8, seed=1, name="dev")
        pre = helper.make_node("Mul", ["x", "two"], ["x2"], name="pre_mul")
        post = helper.make_node(
            "ReduceMean", ["feat"], ["y"], name="post_mean", axes=[2, 3], keepdims=0
        )
        inits = [numpy_helper.from_array(np.array(2.0, np.float32), "two")]
        io_in = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, 3, 8, 8])]
        io_out = [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, 4]),
            helper.make_tensor_value_info("feat", TensorProto.FLOAT, [n, 4, 8, 8]),
        ]
        nodes, part_inits = inline(part, ["x2"], ["feat"], "dev_")
        return make_model([pre, *nodes, post], io_in, io_out, inits + part_inits), nodes

    plain1, device_nodes = build(1)
    cp = compile_part(plain1, 0, device_nodes, ["x2"], ["feat"], [{"x": calib([1, 3, 8, 8], 7)}])
    if not with_emulation:
        if hef is None:
            raise ValueError("a partition without emulation needs a HEF")
        cp = as_hef_only(cp, hef)
    model = hailo_model(plain1, [cp], with_fallback)
    if batch == 1:
        return model, plain1
    # The graph's batch dimension, set after compiling (the HailoOp node has no shape of its own).
    for vi in [*model.graph.input, *model.graph.output]:
        vi.type.tensor_type.shape.dim[0].dim_value = batch
    del model.graph.value_info[:]
    return model, build(batch)[0]


def two_parts():
    """x → HailoOp A → Add 0.5 (CPU) → HailoOp B → z, with a CPU side branch x → Neg → side.

    Returns (hailo model, plain model). Both parts are calibrated on ``calib([1, 3, 6, 6], 11)``.
    """
    a = conv_part(3, 4, 6, seed=2, name="a")
    b = conv_part(4, 2, 6, seed=3, name="b")
    add = helper.make_node("Add", ["fa", "half"], ["fa5"], name="mid_add")
    neg = helper.make_node("Neg", ["x"], ["side"], name="side_neg")
    inits = [numpy_helper.from_array(np.array(0.5, np.float32), "half")]
    io_in = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])]
    io_out = [
        helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2, 6, 6]),
        helper.make_tensor_value_info("side", TensorProto.FLOAT, [1, 3, 6, 6]),
    ]
    na, ia = inline(a, ["x"], ["fa"], "a_")
    nb, ib = inline(b, ["fa5"], ["z"], "b_")
    plain = make_model([*na, neg, add, *nb], io_in, io_out, inits + ia + ib)
    feeds = [{"x": calib([1, 3, 6, 6], 11)}]
    pa = compile_part(plain, 0, na, ["x"], ["fa"], feeds)
    pb = compile_part(plain, 1, nb, ["fa5"], ["z"], feeds)
    return hailo_model(plain, [pa, pb]), plain


def tiny_plain() -> onnx.ModelProto:
    """A plain two-node model: y = relu(x + 1), x [1, 16]."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "one"], ["t"]),
            helper.make_node("Relu", ["t"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
        initializer=[numpy_helper.from_array(np.array(1.0, np.float32), "one")],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )


def ort_run(model: onnx.ModelProto, feed: dict) -> list[np.ndarray]:
    """``model`` run on plain onnxruntime (CPU): the reference outputs."""
    return onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    ).run(None, feed)
