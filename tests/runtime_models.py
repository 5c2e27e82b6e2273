"""Small models for the runtime tests: each with HailoOp nodes and the same model in plain ONNX."""

from __future__ import annotations

import hailoop_builder as hb
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


@pytest.fixture
def hailoop_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use the temporary test reader while ``hailo_ort.hailoop.read`` does not exist."""
    import hailo_ort.hailoop as hailoop

    if not hasattr(hailoop, "read"):
        monkeypatch.setattr(hailoop, "read", hb.read, raising=False)


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
        graph, opset_imports=[helper.make_opsetid("", hb.OPSET)], ir_version=hb.IR_VERSION
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

    Outputs: ``y`` and the device output ``feat``. Returns (hailo model, plain model). With
    ``batch`` > 1 the graph carries ``batch`` frames; the device streams stay one frame each.
    """
    part = conv_part(3, 4, 8, seed=1, name="dev")
    pre = helper.make_node("Mul", ["x", "two"], ["x2"], name="pre_mul")
    post = helper.make_node(
        "ReduceMean", ["feat"], ["y"], name="post_mean", axes=[2, 3], keepdims=0
    )
    inits = [
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
    ]
    io_in = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])]
    io_out = [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4]),
        helper.make_tensor_value_info("feat", TensorProto.FLOAT, [batch, 4, 8, 8]),
    ]
    hp = hb.hailo_part(
        part,
        ["x2"],
        ["feat"],
        {"in": calib([1, 3, 8, 8], 7, 2.0)},
        name="hailo0",
        with_fallback=with_fallback,
        with_emulation=with_emulation,
        hef=hef,
    )
    model = hb.make_model([pre, hp.node, post], io_in, io_out, [hp], inits)
    nodes, part_inits = inline(part, ["x2"], ["feat"], "dev_")
    plain = hb.make_model([pre, *nodes, post], io_in, io_out, [], inits + part_inits)
    return model, plain


def two_parts():
    """x → HailoOp A → Add 0.5 (CPU) → HailoOp B → z, with a CPU side branch x → Neg → side.

    Returns (hailo model, plain model).
    """
    a = conv_part(3, 4, 6, seed=2, name="a")
    b = conv_part(4, 2, 6, seed=3, name="b")
    x_cal = calib([1, 3, 6, 6], 11)
    import onnxruntime

    a_out = onnxruntime.InferenceSession(
        a.SerializeToString(), providers=["CPUExecutionProvider"]
    ).run(None, {"in": x_cal})[0]
    pa = hb.hailo_part(a, ["x"], ["fa"], {"in": x_cal}, name="hailoA")
    pb = hb.hailo_part(b, ["fa5"], ["z"], {"in": a_out + 0.5}, name="hailoB")
    add = helper.make_node("Add", ["fa", "half"], ["fa5"], name="mid_add")
    neg = helper.make_node("Neg", ["x"], ["side"], name="side_neg")
    inits = [numpy_helper.from_array(np.array(0.5, np.float32), "half")]
    io_in = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])]
    io_out = [
        helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2, 6, 6]),
        helper.make_tensor_value_info("side", TensorProto.FLOAT, [1, 3, 6, 6]),
    ]
    model = hb.make_model([pa.node, neg, add, pb.node], io_in, io_out, [pa, pb], inits)
    na, ia = inline(a, ["x"], ["fa"], "a_")
    nb, ib = inline(b, ["fa5"], ["z"], "b_")
    plain = hb.make_model([*na, neg, add, *nb], io_in, io_out, [], inits + ia + ib)
    return model, plain


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
        graph, opset_imports=[helper.make_opsetid("", hb.OPSET)], ir_version=hb.IR_VERSION
    )
