"""FLOPs and parameter counts per node.

A multiply-add counts as 2 FLOPs. Rules (``out`` = output elements, ``in`` = first-input
elements):

* Conv / ConvInteger / QLinearConv: ``2·out·(Cin/groups)·prod(kernel)`` (+ ``out`` for a bias);
  ConvTranspose: ``2·in·(Cout/groups)·prod(kernel)`` (+ ``out`` for a bias).
* Gemm: ``2·M·N·K`` (+ ``M·N`` with C); MatMul(-Integer, QLinear-): ``2·out·K``;
  Einsum: ``2·prod(sizes of all indices)``.
* Elementwise math and activations: 1 per output element per operation (variadic Sum/Max/...:
  ``(inputs−1)·out``).
* MaxPool / AveragePool / LpPool: ``out·prod(kernel)``; global pools and reductions: ``in``.
* Softmax / LogSoftmax: ``3·out``; BatchNormalization: ``2·out``; Instance/Layer/Group
  normalization: ``5·out``; LRN: ``(size+2)·out``.
* Resize / Upsample: per output element 1 (nearest), ``2·2^k`` (linear) or ``2·4^k`` (cubic),
  ``k`` = number of resized axes.
* LSTM / GRU / RNN: gate matmuls ``2·seq·batch·dirs·G·H·(I+H)`` plus ``seq·batch·dirs·G·H``.
* Data movement (Reshape, Transpose, Concat, Slice, Gather, Cast, ...): 0. Nodes whose shapes
  are unknown count 0.

Parameters of a node are the elements of its initializer inputs, except int64 / bool / string
tensors (shapes, axes, indices).
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx

Shapes = dict[str, "list[int] | None"]

_ELEMENTWISE = frozenset(
    """Add Sub Mul Div Pow Mod Neg Abs Reciprocal Sqrt Exp Log Floor Ceil Round Sign Erf
    Sin Cos Tan Asin Acos Atan Sinh Cosh Tanh Asinh Acosh Atanh Relu LeakyRelu PRelu Elu Selu
    Celu Sigmoid HardSigmoid HardSwish Softplus Softsign ThresholdedRelu Gelu Mish Clip
    Equal Greater GreaterOrEqual Less LessOrEqual Not And Or Xor BitShift BitwiseAnd BitwiseOr
    BitwiseXor BitwiseNot Where IsNaN IsInf Shrink Trilu QuickGelu""".split()
)
_VARIADIC = frozenset({"Sum", "Max", "Min", "Mean"})
_REDUCE = frozenset(
    """ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceLogSum
    ReduceLogSumExp ReduceSumSquare ArgMax ArgMin GlobalAveragePool GlobalMaxPool GlobalLpPool
    TopK CumSum""".split()
)
_NORM5 = frozenset(
    {
        "InstanceNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "MeanVarianceNormalization",
    }
)
_PARAM_EXCLUDED = frozenset(
    {onnx.TensorProto.INT64, onnx.TensorProto.BOOL, onnx.TensorProto.STRING}
)


def _prod(dims: Sequence[int]) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def _attr(node: onnx.NodeProto, name: str, default):  # type: ignore[no-untyped-def]
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _shape(shapes: Shapes, names: Sequence[str], index: int) -> list[int] | None:
    if index >= len(names) or not names[index]:
        return None
    return shapes.get(names[index])


def node_flops(node: onnx.NodeProto, shapes: Shapes) -> int:
    """FLOPs of one node from static shapes (0 when unknown or pure data movement)."""
    op = node.op_type
    out = _shape(shapes, node.output, 0)
    x = _shape(shapes, node.input, 0)
    out_n = _prod(out) if out is not None else None
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        w = _shape(shapes, node.input, 3 if op == "QLinearConv" else 1)
        if out_n is None or w is None or len(w) < 2:
            return 0
        bias_index = 8 if op == "QLinearConv" else 2
        bias = out_n if _shape(shapes, node.input, bias_index) is not None else 0
        return 2 * out_n * _prod(w[1:]) + bias
    if op == "ConvTranspose":
        w = _shape(shapes, node.input, 1)
        if x is None or w is None or out_n is None:
            return 0
        bias = out_n if _shape(shapes, node.input, 2) is not None else 0
        return 2 * _prod(x) * _prod(w[1:]) + bias
    if op == "Gemm":
        if x is None or out is None or len(x) != 2 or len(out) != 2:
            return 0
        k = x[0] if _attr(node, "transA", 0) else x[1]
        bias = out_n if _shape(shapes, node.input, 2) is not None else 0
        return 2 * out[0] * out[1] * k + bias
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        if x is None or out_n is None or not x:
            return 0
        return 2 * out_n * x[-1]
    if op == "Einsum":
        return _einsum_flops(node, shapes, out_n)
    if out_n is None:
        return 0
    if op in _ELEMENTWISE:
        return out_n
    if op in _VARIADIC:
        return max(len([i for i in node.input if i]) - 1, 1) * out_n
    if op in ("MaxPool", "AveragePool", "LpPool"):
        return out_n * _prod(_attr(node, "kernel_shape", []) or [1])
    if op in _REDUCE:
        return _prod(x) if x is not None else out_n
    if op in ("Softmax", "LogSoftmax"):
        return 3 * out_n
    if op == "Hardmax":
        return out_n
    if op == "BatchNormalization":
        return 2 * out_n
    if op in _NORM5:
        return 5 * out_n
    if op == "LRN":
        return (int(_attr(node, "size", 1)) + 2) * out_n
    if op in ("Resize", "Upsample"):
        mode = _attr(node, "mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        k = sum(1 for a, b in zip(x or [], out) if a != b) if x is not None else 2
        if mode == "linear" or mode == "bilinear":
            return out_n * 2 * 2**k
        if mode == "cubic":
            return out_n * 2 * 4**k
        return out_n
    if op in ("LSTM", "GRU", "RNN"):
        if x is None or len(x) != 3:
            return 0
        hidden = int(_attr(node, "hidden_size", 0))
        direction = _attr(node, "direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else str(direction)
        dirs = 2 if direction == "bidirectional" else 1
        gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
        seq, batch, size = x
        steps = seq * batch * dirs
        return steps * (2 * gates * hidden * (size + hidden) + gates * hidden)
    return 0


def _einsum_flops(node: onnx.NodeProto, shapes: Shapes, out_n: int | None) -> int:
    equation = _attr(node, "equation", b"")
    equation = equation.decode() if isinstance(equation, bytes) else str(equation)
    lhs = equation.replace(" ", "").split("->")[0]
    terms = lhs.split(",")
    sizes: dict[str, int] = {}
    for term, name in zip(terms, node.input):
        dims = shapes.get(name)
        if dims is None or "." in term or len(term) != len(dims):
            return 2 * out_n if out_n is not None else 0
        for letter, d in zip(term, dims):
            sizes[letter] = max(sizes.get(letter, 1), d)
    return 2 * _prod(sizes.values()) if len(terms) > 1 else (out_n or 0)


def count_flops_and_params(
    model: onnx.ModelProto, shapes: Shapes
) -> tuple[dict[str, int], dict[str, int]]:
    """``(node_flops, node_params)`` by node name for the top-level graph of ``model``."""
    graph = model.graph
    weights = {
        t.name: _prod(t.dims) for t in graph.initializer if t.data_type not in _PARAM_EXCLUDED
    }
    flops: dict[str, int] = {}
    params: dict[str, int] = {}
    for node in graph.node:
        flops[node.name] = int(node_flops(node, shapes))
        params[node.name] = sum(weights.get(i, 0) for i in node.input if i)
    return flops, params
