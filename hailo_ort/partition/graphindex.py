"""An index over a prepared model's graph: nodes in topological order, producers, consumers,
constant tensors, shapes. Built once in linear time; the partitioner works on integer ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ModelError
from ..graph.prepared import PreparedModel
from ..graph.shapes import model_inputs, np_dtype_name
from ..graph.toposort import node_reads, topological_order


class GraphIndex:
    """Integer-indexed view of ``prepared.model.graph``.

    ``nodes[i]`` is the i-th node in topological order. ``preds[i]`` / ``succs[i]`` are the ids of
    nodes producing a non-constant input of node i / consuming a non-constant output of node i.
    Constant tensors (initializers, ``Constant`` node outputs) are not data-flow edges.
    """

    def __init__(self, prepared: PreparedModel) -> None:
        self.prepared = prepared
        graph = prepared.model.graph
        self.initializers: dict[str, onnx.TensorProto] = {t.name: t for t in graph.initializer}
        self.graph_inputs: list[str] = [vi.name for vi in model_inputs(graph)]
        self.graph_outputs: list[str] = [o.name for o in graph.output]
        self.shapes: dict[str, list[int] | None] = dict(prepared.shapes)
        self.dtypes: dict[str, str] = dict(prepared.dtypes)
        self._const_values: dict[str, np.ndarray] = {}
        self._shape_cache: dict[str, list[int] | None] = {}
        self._constant_nodes: dict[str, onnx.NodeProto] = {}
        self.opset = 0
        for imp in prepared.model.opset_import:
            if imp.domain in ("", "ai.onnx"):
                self.opset = imp.version
        raw_nodes = list(graph.node)
        raw_inputs = [node_reads(n) for n in raw_nodes]
        order, stuck = topological_order(raw_nodes, raw_inputs)
        if stuck:
            raise ModelError(
                "the graph has a cycle through "
                f"{[raw_nodes[i].name or raw_nodes[i].op_type for i in stuck][:5]}: "
                "it is not a valid ONNX model"
            )
        self.nodes: list[onnx.NodeProto] = [raw_nodes[i] for i in order]
        #: inputs of each node (with outer-scope reads of subgraphs), aligned with ``nodes``
        self.inputs: list[list[str]] = [raw_inputs[i] for i in order]
        self.names: list[str] = [n.name for n in self.nodes]
        seen: set[str] = set()
        for name in self.names:
            if not name or name in seen:
                raise ModelError(
                    f"node names must be unique and non-empty (prepare the model first): {name!r}"
                )
            seen.add(name)
        self.index: dict[str, int] = {name: i for i, name in enumerate(self.names)}
        self.constants: set[str] = set(self.initializers)
        #: whether each node is a standard ``Constant`` node (its outputs are constants)
        self.constant_node: list[bool] = [
            n.op_type == "Constant" and n.domain in ("", "ai.onnx") for n in self.nodes
        ]
        for n, is_constant_node in zip(self.nodes, self.constant_node):
            if is_constant_node:
                for o in n.output:
                    self.constants.add(o)
                    self._constant_nodes[o] = n
        self.producer: dict[str, int] = {}
        for i, n in enumerate(self.nodes):
            for o in n.output:
                if o:
                    self.producer[o] = i
        count = len(self.nodes)
        self.preds: list[list[int]] = [[] for _ in range(count)]
        self.succs: list[list[int]] = [[] for _ in range(count)]
        self.consumers: dict[str, list[int]] = {}
        for i in range(count):
            for t in self.inputs[i]:
                if not t:
                    continue
                self.consumers.setdefault(t, []).append(i)
                if t in self.constants:
                    continue
                p = self.producer.get(t)
                if p is not None and p not in self.preds[i]:
                    self.preds[i].append(p)
                    self.succs[p].append(i)
        self.output_set = set(self.graph_outputs)

    # --- tensors -------------------------------------------------------------------------------
    def is_constant(self, tensor: str) -> bool:
        """Whether ``tensor`` is an initializer or a Constant node's output."""
        return tensor in self.constants

    def const_value(self, tensor: str) -> np.ndarray | None:
        """Value of a constant tensor (initializer or Constant node output), else None."""
        if tensor in self._const_values:
            return self._const_values[tensor]
        value: np.ndarray | None = None
        if tensor in self.initializers:
            value = numpy_helper.to_array(self.initializers[tensor])
        elif tensor in self._constant_nodes:
            node = self._constant_nodes[tensor]
            for attr in node.attribute:
                if attr.name == "value":
                    value = numpy_helper.to_array(attr.t)
                elif attr.name in ("value_float", "value_int"):
                    value = np.array(onnx.helper.get_attribute_value(attr))
                elif attr.name in ("value_floats", "value_ints"):
                    value = np.array(onnx.helper.get_attribute_value(attr))
        if value is not None:
            self._const_values[tensor] = value
        return value

    def shape(self, tensor: str) -> list[int] | None:
        """Static shape of a tensor, or None when unknown or dynamic."""
        if tensor in self._shape_cache:
            return self._shape_cache[tensor]
        shape = self._static_shape(tensor)
        self._shape_cache[tensor] = shape
        return shape

    def _static_shape(self, tensor: str) -> list[int] | None:
        if tensor in self.initializers:
            return list(self.initializers[tensor].dims)
        shape = self.shapes.get(tensor)
        if shape is None:
            value = self.const_value(tensor) if tensor in self.constants else None
            return list(value.shape) if value is not None else None
        if any((not isinstance(d, int)) or d <= 0 for d in shape):
            return None
        return [int(d) for d in shape]

    def dtype(self, tensor: str) -> str | None:
        """The numpy dtype name of ``tensor``, or None if unknown."""
        if tensor in self.initializers:
            return np_dtype_name(self.initializers[tensor].data_type)
        return self.dtypes.get(tensor)

    def data_inputs(self, node: onnx.NodeProto) -> list[str]:
        """Non-constant, non-empty inputs of a node."""
        return [t for t in node.input if t and t not in self.constants]

    def flops(self, i: int) -> int:
        """FLOPs of node ``i``."""
        return int(self.prepared.node_flops.get(self.names[i], 0))

    def params(self, i: int) -> int:
        """Parameter count of node ``i``."""
        return int(self.prepared.node_params.get(self.names[i], 0))


def attrs(node: onnx.NodeProto) -> dict[str, Any]:
    """Attributes of a node as Python values (bytes decoded to str)."""
    out: dict[str, Any] = {}
    for attr in node.attribute:
        value = onnx.helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode("utf-8", "replace") for v in value]
        out[attr.name] = value
    return out


def normalise_axis(axis: int, rank: int) -> int:
    """A negative ``axis`` counted from the end of ``rank`` dims, as a non-negative index."""
    return axis + rank if axis < 0 else axis


def as_int_list(values: Sequence[Any] | np.ndarray | None) -> list[int]:
    """``values`` flattened to a list of Python ints (``[]`` for None)."""
    if values is None:
        return []
    return [int(v) for v in np.asarray(values).reshape(-1)]
