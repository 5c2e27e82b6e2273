"""Property: on random graphs mixing constant and input-dependent chains, prepare() folds the
constant parts and onnxruntime gives the same outputs before and after."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from hailo_ort.graph import prepare

SHAPE = [2, 3, 4]


class _RandomGraph:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, value: np.ndarray) -> str:
        name = self.name("c")
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.name("t")
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name(op), **attrs))
        return out

    def constant_tensor(self, depth: int) -> str:
        """A float tensor of shape SHAPE computed from constants only (foldable)."""
        rng = self.rng
        if depth == 0:
            return self.const(rng.uniform(0.5, 2.0, SHAPE).astype(np.float32))
        choice = int(rng.integers(0, 7))
        a = self.constant_tensor(depth - 1)
        if choice == 0:
            return self.node(
                ["Add", "Sub", "Mul", "Div"][int(rng.integers(0, 4))],
                [a, self.constant_tensor(depth - 1)],
            )
        if choice == 1:
            return self.node(
                ["Neg", "Abs", "Sqrt", "Exp", "Relu"][int(rng.integers(0, 5))],
                [self.node("Abs", [a])],
            )
        if choice == 2:
            t = self.node("Transpose", [a], perm=[2, 0, 1])
            return self.node("Transpose", [t], perm=[1, 2, 0])
        if choice == 3:
            flat = self.node("Reshape", [a, self.const(np.array([-1], np.int64))])
            return self.node("Reshape", [flat, self.const(np.array(SHAPE, np.int64))])
        if choice == 4:
            both = self.node("Concat", [a, self.constant_tensor(depth - 1)], axis=1)
            starts, ends = self.const(np.array([3], np.int64)), self.const(np.array([6], np.int64))
            return self.node("Slice", [both, starts, ends, self.const(np.array([1], np.int64))])
        if choice == 5:
            s = self.node("ReduceSum", [a, self.const(np.array([2], np.int64))], keepdims=1)
            return self.node("Add", [a, s])
        cond = self.node("Greater", [a, self.const(np.array(1.0, np.float32))])
        return self.node("Where", [cond, a, self.constant_tensor(depth - 1)])

    def shape_tensor(self, x: str) -> str:
        """A float tensor of shape SHAPE computed from the *shape* of x (foldable once the
        input shape is fixed): Shape → Gather → Cast → Range → Expand-like chain."""
        shape = self.node("Shape", [x])
        dim = self.node("Gather", [shape, self.const(np.array(2, np.int64))], axis=0)
        dim_f = self.node("Cast", [dim], to=TensorProto.FLOAT)
        ramp = self.node(
            "Range",
            [self.const(np.array(0.0, np.float32)), dim_f, self.const(np.array(1.0, np.float32))],
        )
        return self.node("Expand", [ramp, shape])

    def build(self) -> onnx.ModelProto:
        x = "x"
        for _ in range(int(self.rng.integers(1, 4))):
            kind = int(self.rng.integers(0, 3))
            other = (
                self.shape_tensor(x)
                if kind == 0
                else self.constant_tensor(int(self.rng.integers(0, 4)))
            )
            x = self.node(["Add", "Mul", "Sub"][int(self.rng.integers(0, 3))], [x, other])
            if kind == 2:
                x = self.node("Sigmoid", [x])
        graph = helper.make_graph(
            self.nodes,
            "random",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
            [helper.make_tensor_value_info(x, TensorProto.FLOAT, SHAPE)],
            self.inits,
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


_INPUT_OPS = {"Add", "Mul", "Sub", "Sigmoid"}


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2**31))
def test_folding_preserves_outputs(seed):
    model = _RandomGraph(seed).build()
    onnx.checker.check_model(model)
    prepared = prepare(model)
    onnx.checker.check_model(prepared.model)
    # Everything that does not depend on x is gone; what is left reads x, directly or not.
    assert {n.op_type for n in prepared.model.graph.node} <= _INPUT_OPS
    assert len(prepared.model.graph.node) + len(prepared.folded) <= len(model.graph.node)
    x = np.random.default_rng(seed).uniform(-2, 2, SHAPE).astype(np.float32)
    np.testing.assert_allclose(_run(prepared.model, x), _run(model, x), rtol=1e-5, atol=1e-6)
