"""Constant folding to a fixed point, and dead-node elimination.

A node is folded (replaced by initializers holding its outputs) when all its inputs are
constants, or when it is ``Shape`` / ``Size`` of a tensor whose shape is static. Folding runs in
topological order, so chains such as ``Shape → Gather → Range → Expand`` collapse in one pass;
shape inference is re-run after each pass that folded something, until nothing more folds.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .shapes import infer_shapes, static_dims

log = logging.getLogger(__name__)

MAX_CONST_BYTES = 16 * 1024 * 1024

# Never folded: random generators, quantization boundaries (kept so QDQ models stay QDQ),
# sequence / optional ops, and ops whose output depends on more than their inputs.
_NO_FOLD = frozenset(
    {
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
        "Dropout",
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "If",
        "Loop",
        "Scan",
        "SequenceMap",
        "SequenceConstruct",
        "SequenceEmpty",
        "SequenceInsert",
        "SequenceErase",
        "SequenceAt",
        "SequenceLength",
        "SplitToSequence",
        "ConcatFromSequence",
        "Optional",
        "OptionalGetElement",
        "OptionalHasElement",
    }
)
_STANDARD_DOMAINS = ("", "ai.onnx")


def subgraph_inputs(node: onnx.NodeProto) -> Iterator[str]:
    """Every tensor name read inside the node's subgraph attributes (a superset of the outer
    scope names they use)."""
    for attr in node.attribute:
        graphs = list(attr.graphs)
        if attr.HasField("g"):
            graphs.append(attr.g)
        for g in graphs:
            for n in g.node:
                yield from (x for x in n.input if x)
                yield from subgraph_inputs(n)
            yield from (o.name for o in g.output)


# Standard ops with graph attributes; nodes of other domains may have them too.
_SUBGRAPH_OPS = frozenset({"If", "Loop", "Scan", "SequenceMap"})


def may_have_subgraph(node: onnx.NodeProto) -> bool:
    """Cheap test: only these nodes can carry subgraph attributes."""
    return node.op_type in _SUBGRAPH_OPS or node.domain not in _STANDARD_DOMAINS


def _has_subgraph(node: onnx.NodeProto) -> bool:
    return may_have_subgraph(node) and any(a.HasField("g") or len(a.graphs) for a in node.attribute)


def _constant_value(node: onnx.NodeProto) -> onnx.TensorProto | None:
    """The tensor a ``Constant`` node produces (None for sparse values)."""
    name = node.output[0]
    for attr in node.attribute:
        if attr.name == "value":
            t = onnx.TensorProto()
            t.CopyFrom(attr.t)
            t.name = name
            return t
        if attr.name == "value_float":
            return helper.make_tensor(name, onnx.TensorProto.FLOAT, [], [attr.f])
        if attr.name == "value_floats":
            return helper.make_tensor(name, onnx.TensorProto.FLOAT, [len(attr.floats)], attr.floats)
        if attr.name == "value_int":
            return helper.make_tensor(name, onnx.TensorProto.INT64, [], [attr.i])
        if attr.name == "value_ints":
            return helper.make_tensor(name, onnx.TensorProto.INT64, [len(attr.ints)], attr.ints)
        if attr.name == "value_string":
            return helper.make_tensor(name, onnx.TensorProto.STRING, [], [attr.s])
        if attr.name == "value_strings":
            return helper.make_tensor(
                name, onnx.TensorProto.STRING, [len(attr.strings)], list(attr.strings)
            )
    return None


class _Folder:
    """One folding pass over a graph."""

    def __init__(
        self, model: onnx.ModelProto, max_bytes: int, evaluators: dict[bytes, Any] | None = None
    ) -> None:
        self.model = model
        self.evaluators: dict[bytes, Any] = {} if evaluators is None else evaluators
        self.graph = model.graph
        self.max_bytes = max_bytes
        self.opsets = {
            (o.domain if o.domain != "ai.onnx" else ""): o.version for o in model.opset_import
        }
        self.consts: dict[str, onnx.TensorProto] = {t.name: t for t in self.graph.initializer}
        self.arrays: dict[str, np.ndarray] = {}
        self._types: dict[str, onnx.TypeProto] | None = None
        self.graph_outputs = {o.name for o in self.graph.output}

    @property
    def types(self) -> dict[str, onnx.TypeProto]:
        """Types of inputs and inferred tensors by name (built on first use)."""
        if self._types is None:
            self._types = {vi.name: vi.type for vi in (*self.graph.input, *self.graph.value_info)}
        return self._types

    def array(self, name: str) -> np.ndarray:
        arr = self.arrays.get(name)
        if arr is None:
            arr = numpy_helper.to_array(self.consts[name])
            self.arrays[name] = arr
        return arr

    def input_shape(self, name: str) -> list[int] | None:
        if name in self.consts:
            return [int(d) for d in self.consts[name].dims]
        t = self.types.get(name)
        return static_dims(t) if t is not None else None

    def _output_ok(self, name: str, arr: Any) -> bool:
        if not isinstance(arr, np.ndarray) or arr.dtype == object:
            return False
        if arr.nbytes > self.max_bytes:
            return False
        t = self.types.get(name)
        if t is not None and t.HasField("tensor_type"):
            elem = t.tensor_type.elem_type
            if elem and helper.tensor_dtype_to_np_dtype(elem) != arr.dtype:
                return False
            dims = static_dims(t)
            if dims is not None and list(arr.shape) != dims:
                return False
        return True

    def _too_big(self, node: onnx.NodeProto) -> bool:
        for out in node.output:
            t = self.types.get(out)
            if t is None or not t.HasField("tensor_type"):
                continue
            dims = static_dims(t)
            elem = t.tensor_type.elem_type
            if dims is None or not elem:
                continue
            try:
                itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(elem)).itemsize
            except (KeyError, TypeError):
                continue
            if int(np.prod(dims, dtype=np.int64)) * itemsize > self.max_bytes:
                return True
        return False

    def _evaluator(self, node: onnx.NodeProto) -> Any:
        """A reference evaluator for the node's op and attributes, shared by identical nodes
        (inputs renamed ``i<k>``, outputs ``o<k>``): building one costs far more than running."""
        from onnx.reference import ReferenceEvaluator

        norm = onnx.NodeProto()
        norm.op_type = node.op_type
        norm.domain = node.domain
        norm.input.extend(f"i{k}" if x else "" for k, x in enumerate(node.input))
        norm.output.extend(f"o{k}" for k in range(len(node.output)))
        norm.attribute.extend(node.attribute)
        key = norm.SerializeToString()
        evaluator = self.evaluators.get(key)
        if evaluator is None:
            evaluator = ReferenceEvaluator(norm, opsets=self.opsets)
            self.evaluators[key] = evaluator
        return evaluator

    def evaluate(self, node: onnx.NodeProto) -> list[np.ndarray] | list[onnx.TensorProto] | None:
        """Outputs of ``node`` if it can be folded, else None."""
        op = node.op_type
        consts = self.consts
        if op not in ("Constant", "Shape", "Size") and not all(
            x in consts for x in node.input if x
        ):
            return None
        if node.domain not in _STANDARD_DOMAINS or op in _NO_FOLD or _has_subgraph(node):
            return None
        if any(o in self.graph_outputs for o in node.output):
            return None
        if op == "Constant":
            t = _constant_value(node)
            return None if t is None else [t]
        if op in ("Shape", "Size"):
            if not node.input:
                return None
            dims = self.input_shape(node.input[0])
            if dims is None:
                return None
            if op == "Size":
                return [np.array(int(np.prod(dims, dtype=np.int64)), dtype=np.int64)]
            start, end = 0, len(dims)
            for attr in node.attribute:
                if attr.name == "start":
                    start = attr.i
                elif attr.name == "end":
                    end = attr.i
            return [np.array(dims[start:end], dtype=np.int64)]
        inputs = [x for x in node.input if x]
        if not inputs:
            return None
        if self._too_big(node):
            return None
        try:
            if op == "Identity":
                return [self.array(inputs[0])]
            feeds = {f"i{k}": self.array(x) for k, x in enumerate(node.input) if x}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with np.errstate(all="ignore"):
                    results = self._evaluator(node).run(None, feeds)
        except Exception as exc:  # any failure just means: not folded
            log.debug("not folding %s (%s): %s", node.name, op, exc)
            return None
        results = [np.asarray(r) if np.isscalar(r) else r for r in results]
        if len(results) != len(node.output):
            return None
        return results

    def run(self, folded: list[str]) -> int:
        """Fold what can be folded; returns the number of nodes folded."""
        kept: list[onnx.NodeProto] = []
        new_inits: list[onnx.TensorProto] = []
        count = 0
        for node in self.graph.node:
            results = self.evaluate(node)
            if results is not None:
                tensors: list[tuple[str, onnx.TensorProto]] = []
                for name, value in zip(node.output, results):
                    if not name:
                        continue
                    if isinstance(value, onnx.TensorProto):
                        tensors.append((name, value))
                        continue
                    if not self._output_ok(name, value):
                        tensors = []
                        break
                    tensors.append(
                        (name, numpy_helper.from_array(np.ascontiguousarray(value), name))
                    )
                    self.arrays[name] = value
                if tensors:
                    for name, tensor in tensors:
                        self.consts[name] = tensor
                        new_inits.append(tensor)
                    folded.append(node.name)
                    count += 1
                    continue
            kept.append(node)
        if count:
            del self.graph.node[:]
            self.graph.node.extend(kept)
            self.graph.initializer.extend(new_inits)
            produced_by_init = {t.name for t in new_inits}
            vis = [vi for vi in self.graph.value_info if vi.name not in produced_by_init]
            del self.graph.value_info[:]
            self.graph.value_info.extend(vis)
        return count


def eliminate_dead(graph: onnx.GraphProto) -> int:
    """Remove nodes whose outputs nobody reads, and unused initializers; returns nodes removed.

    Tensors read inside subgraphs (If / Loop bodies) count as read.
    """
    needed = {o.name for o in graph.output}
    keep_rev: list[onnx.NodeProto] = []
    removed = 0
    for node in reversed(graph.node):
        if any(o in needed for o in node.output if o):
            keep_rev.append(node)
            needed.update(node.input)
            if may_have_subgraph(node):
                needed.update(subgraph_inputs(node))
        else:
            removed += 1
    if removed:
        del graph.node[:]
        graph.node.extend(reversed(keep_rev))
        produced = {o for n in graph.node for o in n.output}
        vis = [vi for vi in graph.value_info if vi.name in produced]
        del graph.value_info[:]
        graph.value_info.extend(vis)
    unused = [t for t in graph.initializer if t.name not in needed]
    if unused:
        inits = [t for t in graph.initializer if t.name in needed]
        del graph.initializer[:]
        graph.initializer.extend(inits)
    return removed


def fold_constants(
    model: onnx.ModelProto, max_bytes: int = MAX_CONST_BYTES, max_rounds: int = 10
) -> list[str]:
    """Fold constants in ``model`` (in place) to a fixed point; returns folded node names.

    Expects inferred shapes in ``model`` (see :func:`~hailo_ort.graph.shapes.infer_shapes`);
    re-infers them after folding. Outputs bigger than ``max_bytes`` are not produced; nodes
    that fail to evaluate are left as they are. Dead nodes and initializers are removed.
    """
    folded: list[str] = []
    evaluators: dict[bytes, Any] = {}
    for _ in range(max_rounds):
        count = _Folder(model, max_bytes, evaluators).run(folded)
        eliminate_dead(model.graph)
        if not count:
            break
        infer_shapes(model)
    return folded
