"""TEMPORARY test-only stand-in for stage 1 (``hailo_ort.graph.prepare``) while it is written.

It does just enough for the partitioner tests: load, name nodes uniquely, fix input shapes,
fold constant subgraphs (Constant nodes, Shape of static tensors, nodes of constants only),
infer shapes and count FLOPs/params roughly. Once ``hailo_ort.graph.prepare`` lands the tests use
the real one (see ``tests/conftest.py::prepare_impl``); delete this file then.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from hailo_ort.errors import InputShapeError, ModelError
from hailo_ort.graph.prepared import PreparedModel


def parse_input_shapes(items: Sequence[str] | None) -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = {}
    for item in items or []:
        name, sep, dims = item.rpartition("=")
        if not sep or not name:
            raise InputShapeError(f"bad --input-shape {item!r}: expected NAME=1,3,224,224")
        try:
            shapes[name] = [int(d) for d in dims.split(",")]
        except ValueError:
            raise InputShapeError(f"bad --input-shape {item!r}: dims must be integers") from None
    return shapes


def load_model(model: Any) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        m = onnx.ModelProto()
        m.CopyFrom(model)
        return m
    try:
        if isinstance(model, (bytes, bytearray)):
            return onnx.load_from_string(bytes(model))
        if isinstance(model, str) and model.startswith("example:"):
            from hailo_ort import zoo  # type: ignore[attr-defined]

            return zoo.get_example(model.split(":", 1)[1])
        path = Path(os.fspath(model))
        if not path.exists():
            raise ModelError(f"{path}: no such file")
        return onnx.load(str(path))
    except ModelError:
        raise
    except ImportError as exc:
        raise ModelError(f"{model}: {exc}") from None
    except Exception as exc:
        raise ModelError(f"{model}: not a valid ONNX model ({type(exc).__name__})") from None


def _dims(vi: onnx.ValueInfoProto) -> list[Any] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]


def _run_node(node: onnx.NodeProto, values: dict[str, np.ndarray], opset: list) -> list[np.ndarray]:
    from onnx.reference import ReferenceEvaluator

    ins = [
        helper.make_tensor_value_info(
            t, helper.np_dtype_to_tensor_dtype(values[t].dtype), values[t].shape
        )
        for t in node.input
        if t
    ]
    outs = [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output]
    g = helper.make_graph([node], "fold", ins, outs)
    m = helper.make_model(g, opset_imports=opset)
    ev = ReferenceEvaluator(m)
    return ev.run(None, {t: values[t] for t in node.input if t})


def prepare(
    model: Any, input_shapes: dict[str, list[int]] | Sequence[str] | None = None
) -> PreparedModel:
    if isinstance(input_shapes, (list, tuple)):
        input_shapes = parse_input_shapes(input_shapes)
    m = load_model(model)
    g = m.graph
    # unique names
    used: set[str] = set()
    for i, n in enumerate(g.node):
        name = n.name or f"{n.op_type}_{i}"
        while name in used:
            name = f"{name}_{i}"
        n.name = name
        used.add(name)
    inits = {t.name for t in g.initializer}
    real_inputs = [i for i in g.input if i.name not in inits]
    shapes_in = dict(input_shapes or {})
    for name in shapes_in:
        if name not in {i.name for i in real_inputs}:
            raise InputShapeError(
                f"unknown input {name!r}; inputs: {', '.join(i.name for i in real_inputs)}"
            )
    fixed: dict[str, list[int]] = {}
    for vi in real_inputs:
        dims = _dims(vi) or []
        if vi.name in shapes_in:
            dims = shapes_in[vi.name]
            tt = vi.type.tensor_type
            tt.shape.ClearField("dim")
            for d in dims:
                tt.shape.dim.add().dim_value = d
        if any(not isinstance(d, int) or d <= 0 for d in dims):
            raise InputShapeError(
                f"input {vi.name!r} has dynamic shape {dims}; give --input-shape {vi.name}=..."
            )
        fixed[vi.name] = list(dims)
    # fold constants
    values: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    try:
        inferred = shape_inference.infer_shapes(m)
    except Exception as exc:
        raise ModelError(f"shape inference failed: {exc}") from None
    static = {
        vi.name: _dims(vi) for vi in list(inferred.graph.value_info) + list(inferred.graph.input)
    }
    folded: list[str] = []
    keep: list[onnx.NodeProto] = []
    for n in g.node:
        outs: list[np.ndarray] | None = None
        if n.op_type == "Constant":
            outs = _run_node(n, values, list(m.opset_import))
        elif (
            n.op_type == "Shape"
            and static.get(n.input[0])
            and all(isinstance(d, int) and d > 0 for d in static[n.input[0]])
        ):
            outs = [np.array(static[n.input[0]], dtype=np.int64)]
            a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
            outs = [outs[0][a.get("start", 0) : a.get("end", None)]]
        elif (
            n.input
            and all((not t) or t in values for t in n.input)
            and n.op_type not in ("If", "Loop", "Scan")
        ):
            try:
                outs = _run_node(n, values, list(m.opset_import))
            except Exception:
                outs = None
        if outs is None:
            keep.append(n)
            continue
        for o, v in zip(n.output, outs):
            values[o] = np.asarray(v)
        folded.append(n.name)
    consumed = {t for n in keep for t in n.input} | {o.name for o in g.output}
    for n in keep:
        for a in n.attribute:
            if a.HasField("g"):
                for sub in a.g.node:
                    consumed.update(sub.input)
    del g.node[:]
    g.node.extend(keep)
    del g.initializer[:]
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in values.items() if k in consumed)
    del g.value_info[:]
    try:
        m = shape_inference.infer_shapes(m, data_prop=True)
    except Exception as exc:
        raise ModelError(f"shape inference failed: {exc}") from None
    g = m.graph
    shapes: dict[str, list[int] | None] = {}
    dtypes: dict[str, str] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        dims = _dims(vi)
        shapes[vi.name] = (
            dims if dims is not None and all(isinstance(d, int) and d > 0 for d in dims) else None
        )
        if dims == []:
            shapes[vi.name] = []
        et = vi.type.tensor_type.elem_type
        if et:
            dtypes[vi.name] = helper.tensor_dtype_to_np_dtype(et).name
    for t in g.initializer:
        shapes[t.name] = list(t.dims)
        dtypes[t.name] = helper.tensor_dtype_to_np_dtype(t.data_type).name
    init_size = {t.name: int(np.prod(t.dims)) if t.dims else 1 for t in g.initializer}
    flops: dict[str, int] = {}
    params: dict[str, int] = {}
    for n in g.node:
        out = shapes.get(n.output[0]) if n.output else None
        out_elems = int(np.prod(out)) if out else 0
        if n.op_type in ("Conv", "ConvTranspose") and len(n.input) > 1 and shapes.get(n.input[1]):
            w = shapes[n.input[1]]
            per_out = int(np.prod(w[1:]))
            if n.op_type == "ConvTranspose":
                src = shapes.get(n.input[0]) or [0]
                flops[n.name] = 2 * int(np.prod(src)) * int(np.prod(w[1:]))
            else:
                flops[n.name] = 2 * out_elems * per_out
        elif n.op_type in ("Gemm", "MatMul") and len(n.input) > 1:
            a_shape = shapes.get(n.input[0]) or [0]
            k = a_shape[-1] if a_shape else 0
            flops[n.name] = 2 * out_elems * k
        else:
            flops[n.name] = out_elems
        p = sum(init_size.get(t, 0) for t in n.input[1:] if t in init_size)
        if p:
            params[n.name] = p
    return PreparedModel(m, fixed, flops, params, folded, shapes, dtypes)


def ensure_prepare() -> bool:
    """Install this shim as ``hailo_ort.graph.prepare`` (and friends) unless stage 1 provides
    them. Returns True when the real ``prepare`` is in use."""
    import hailo_ort.graph as graph

    if hasattr(graph, "prepare"):
        return graph.prepare is not prepare
    graph.prepare = prepare  # type: ignore[attr-defined]
    graph.parse_input_shapes = parse_input_shapes  # type: ignore[attr-defined]
    graph.load_model = load_model  # type: ignore[attr-defined]
    return False
