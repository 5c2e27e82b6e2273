"""Small float models and hand-made compiled partitions for the HailoOp format tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hailo_ort.graph.subgraph import value_infos
from hailo_ort.hailoop import CompiledPartition, StreamSpec
from hailo_ort.partition.types import Partition, TensorSpec
from hailo_ort.quant import QuantInfo

RNG = np.random.default_rng(1234)


def _w(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array((RNG.standard_normal(shape) * 0.3).astype(np.float32), name)


def _model(nodes, inputs, outputs, inits, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)
    m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    onnx.checker.check_model(m)
    return m


def _vi(name: str, shape: list[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def one_partition_model(opset: int = 17) -> tuple[onnx.ModelProto, list[str]]:
    """x → Mul(pre) → [Conv → Relu → Conv] → Sigmoid → y; returns (model, partition nodes)."""
    nodes = [
        helper.make_node("Mul", ["x", "half"], ["pre"], name="pre_mul"),
        helper.make_node("Conv", ["pre", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c2"], ["y"], name="post_sigmoid"),
    ]
    inits = [
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        _w("w1", 6, 3, 3, 3),
        _w("b1", 6),
        _w("w2", 4, 6, 3, 3),
    ]
    m = _model(nodes, [_vi("x", [1, 3, 8, 8])], [_vi("y", [1, 4, 8, 8])], inits, opset)
    return m, ["conv1", "relu1", "conv2"]


def two_partition_model() -> tuple[onnx.ModelProto, list[str], list[str]]:
    """x → [Conv → Relu] → Abs (CPU) → [Conv → Relu] → ReduceMean (CPU) → y.

    The first partition's output is also a graph output (``r1``), and the weight ``shared``
    is read both by the CPU part and by the second partition.
    """
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Abs", ["r1"], ["a"], name="cpu_abs"),
        helper.make_node("Mul", ["a", "shared"], ["am"], name="cpu_mul"),
        helper.make_node("Conv", ["am", "w2", "b2"], ["c2"], name="conv2", pads=[0, 0, 0, 0]),
        helper.make_node("Mul", ["c2", "shared"], ["c2m"], name="mul2"),
        helper.make_node("Relu", ["c2m"], ["r2"], name="relu2"),
        helper.make_node("ReduceMean", ["r2"], ["y"], name="cpu_mean", axes=[2, 3], keepdims=0),
    ]
    inits = [
        _w("w1", 5, 3, 3, 3),
        _w("w2", 7, 5, 1, 1),
        _w("b2", 7),
        numpy_helper.from_array(np.array(1.5, np.float32), "shared"),
    ]
    m = _model(
        nodes,
        [_vi("x", [1, 3, 6, 6])],
        [_vi("y", [1, 7]), _vi("r1", [1, 5, 6, 6])],
        inits,
    )
    return m, ["conv1", "relu1"], ["conv2", "mul2", "relu2"]


def two_input_model() -> tuple[onnx.ModelProto, list[str]]:
    """x1, x2 → Neg (CPU on x2) → [Conv(x1), Conv(n2) → Add → Relu] → Sigmoid → y."""
    nodes = [
        helper.make_node("Neg", ["x2"], ["n2"], name="cpu_neg"),
        helper.make_node("Conv", ["x1", "wa"], ["ca"], name="conv_a", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["n2", "wb"], ["cb"], name="conv_b", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["ca", "cb"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["r"], name="relu"),
        helper.make_node("Sigmoid", ["r"], ["y"], name="post_sigmoid"),
    ]
    inits = [_w("wa", 4, 3, 3, 3), _w("wb", 4, 2, 3, 3)]
    m = _model(
        nodes,
        [_vi("x1", [1, 3, 5, 7]), _vi("x2", [1, 2, 5, 7])],
        [_vi("y", [1, 4, 5, 7])],
        inits,
    )
    return m, ["conv_a", "conv_b", "add", "relu"]


def stream(model: onnx.ModelProto, tensor: str, net: str, scale: float = 0.05) -> StreamSpec:
    """A StreamSpec for a float NCHW tensor of ``model`` (device NHWC uint8)."""
    vi = value_infos(model)[tensor]
    shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    if len(shape) == 4:
        n, c, h, w = shape
        device_shape, host_order = [n, h, w, c], "NCHW"
    else:
        device_shape, host_order = list(shape), "NC"
    return StreamSpec(
        vstream=f"{net}/{tensor}",
        tensor=tensor,
        shape=shape,
        dtype="float32",
        device_shape=device_shape,
        device_order="NHWC" if len(shape) == 4 else "NC",
        device_dtype="uint8",
        quant=QuantInfo(zp=12.0, scale=scale, limvals_min=-0.6, limvals_max=12.15),
        host_order=host_order,
    )


def compiled_partition(
    model: onnx.ModelProto,
    index: int,
    nodes: list[str],
    inputs: list[str],
    outputs: list[str],
    backend: str,
    payload: bytes,
    arch: str = "hailo8l",
) -> CompiledPartition:
    """A hand-made CompiledPartition of ``nodes`` (payload = HEF bytes or emulation bytes)."""
    net = f"net{index}"
    ins = [stream(model, t, net) for t in inputs]
    outs = [stream(model, t, net, scale=0.02) for t in outputs]
    part = Partition(
        index=index,
        nodes=list(nodes),
        start_nodes=[nodes[0]],
        end_nodes=[nodes[-1]],
        inputs=[TensorSpec(s.tensor, s.shape, s.dtype) for s in ins],
        outputs=[TensorSpec(s.tensor, s.shape, s.dtype) for s in outs],
        flops=1000 * (index + 1),
        params=10,
    )
    return CompiledPartition(
        partition=part,
        arch=arch,
        backend=backend,
        inputs=ins,
        outputs=outs,
        hef=payload if backend == "dfc" else None,
        emulation=payload if backend == "emulate" else None,
        toolchain={"dfc": "3.33.0", "hailort": "4.23.0"} if backend == "dfc" else {},
        report={"max_abs_error": {t: 0.01 for t in outputs}} if backend == "emulate" else {},
    )


def boundary(model: onnx.ModelProto, nodes: list[str]) -> tuple[list[str], list[str]]:
    """The tensors a set of nodes reads from outside (not initializers) and those it exports."""
    wanted = set(nodes)
    inside = [n for n in model.graph.node if n.name in wanted]
    produced = {o for n in inside for o in n.output if o}
    inits = {i.name for i in model.graph.initializer}
    inputs: list[str] = []
    for n in inside:
        for x in n.input:
            if x and x not in produced and x not in inits and x not in inputs:
                inputs.append(x)
    used_outside = {x for n in model.graph.node if n.name not in wanted for x in n.input}
    used_outside |= {o.name for o in model.graph.output}
    outputs = [o for n in inside for o in n.output if o in produced and o in used_outside]
    return inputs, outputs


def with_static_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fix every symbolic input dim to 1, name unnamed nodes, and infer shapes."""
    for i in model.graph.input:
        for d in i.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.dim_value = 1
    for k, n in enumerate(model.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{k}"
    del model.graph.value_info[:]
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)
