"""Write device partitions as ``ai.hailo::HailoOp`` nodes: portable (default) or fork flavour."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import onnx
from onnx import helper

from .. import __version__
from ..errors import HailoOpFormatError, ModelError
from ..fileio import write_bytes_atomic
from ..graph.subgraph import value_infos
from ..graph.toposort import node_reads, topological_order
from . import format as fmt
from ._model import ModelLike, elem_type_of, load_model, tensor_dtype, tensor_shape
from .reader import hailo_node_name, is_hailo_op, payload_sha256, read
from .types import CompiledPartition, StreamSpec


def embed(
    model: ModelLike, compiled: Sequence[CompiledPartition], flavour: str = "portable"
) -> onnx.ModelProto:
    """Replace each compiled partition's nodes in ``model`` by one ``ai.hailo::HailoOp`` node.

    ``flavour="portable"`` (default): the node carries the fork's seven attributes plus our
    ``hailo_ort_*`` attributes, and a model-local function overload whose body is the original
    float subgraph, so the file runs on stock onnxruntime. ``flavour="fork"``: exactly the schema
    of Hailo's ONNX Runtime fork (IR ≤ 8, opset ≤ 16, one input per node, no functions; our
    metadata in ``model.metadata_props``); what it cannot express raises HailoOpFormatError.
    ``model`` is not modified. See docs/hailoop-format.md.
    """
    if flavour not in fmt.FLAVOURS:
        raise HailoOpFormatError(f"unknown flavour {flavour!r}; expected one of {fmt.FLAVOURS}")
    compiled = list(compiled)
    if not compiled:
        raise HailoOpFormatError("embed: no compiled partitions given")
    m = load_model(model, copy=True)
    graph = m.graph
    if flavour == "fork":
        if any(is_hailo_op(n) for n in graph.node):
            raise HailoOpFormatError(
                "fork flavour: the model already has HailoOp nodes; embed into the float model"
            )
        for cp in compiled:
            _check_fork_expressible(cp)

    infos = value_infos(m)
    if any(s.tensor not in infos for cp in compiled for s in cp.inputs + cp.outputs):
        m = onnx.shape_inference.infer_shapes(m)
        graph = m.graph
        infos = value_infos(m)

    node_by_name: dict[str, onnx.NodeProto] = {}
    for n in graph.node:
        if n.name:
            if n.name in node_by_name:
                raise ModelError(
                    f"embed: two nodes are named {n.name!r}; node names must be unique"
                )
            node_by_name[n.name] = n
    taken_nodes: set[str] = set()
    used_names = {hailo_node_name(n, i) for i, n in enumerate(graph.node)}
    overloads = {f.overload for f in m.functions if (f.domain, f.name) == (fmt.DOMAIN, fmt.OP_TYPE)}
    init_by_name = {i.name: i for i in graph.initializer}

    replacements: list[tuple[set[str], onnx.NodeProto]] = []
    functions: list[onnx.FunctionProto] = []
    metadata: dict[str, str] = {}
    internal_infos: set[str] = set()
    for cp in compiled:
        part = cp.partition
        nodes = _partition_nodes(cp, node_by_name, taken_nodes)
        _check_boundary(cp, nodes, graph, init_by_name)
        node_name = _unique(f"{fmt.OP_TYPE}_{part.index}", used_names)
        meta = _metadata(cp)
        node = _hailo_node(cp, node_name, meta, flavour, infos)
        if flavour == "portable":
            overload = _unique(f"partition_{part.index}", overloads)
            node.overload = overload
            functions.append(_fallback_function(m, cp, nodes, overload, infos, init_by_name))
        else:
            metadata[fmt.META_KEY_PREFIX + node_name] = json.dumps(meta, sort_keys=True)
        produced = {o for n in nodes for o in n.output if o}
        internal_infos |= produced - {s.tensor for s in cp.outputs}
        replacements.append(({n.name for n in nodes}, node))

    # Each HailoOp node takes the place of its partition's first node; then sort topologically.
    first_of = {
        nodes_[0]: node for nodes_, node in ((_ordered(graph, n), h) for n, h in replacements)
    }
    removed = set().union(*(names for names, _ in replacements))
    placed = [
        first_of.get(n.name, n) for n in graph.node if n.name in first_of or n.name not in removed
    ]
    new_nodes = _topological(placed)
    still_used = {x for n in new_nodes for x in _node_reads(n)}
    graph_outputs = {o.name for o in graph.output}

    del graph.node[:]
    graph.node.extend(new_nodes)
    dropped_inits = {i.name for i in graph.initializer if i.name not in still_used} & {
        x for cp in compiled for n in cp.partition.nodes for x in node_by_name[n].input
    }
    inits = [i for i in graph.initializer if i.name not in dropped_inits]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    inputs = [i for i in graph.input if i.name not in dropped_inits]
    del graph.input[:]
    graph.input.extend(inputs)
    vis = [v for v in graph.value_info if v.name not in internal_infos]
    have = {v.name for v in vis} | graph_outputs | {i.name for i in graph.input}
    for cp in compiled:
        for st in cp.inputs + cp.outputs:
            if st.tensor not in have:
                vis.append(infos.get(st.tensor) or _value_info(st))
                have.add(st.tensor)
    del graph.value_info[:]
    graph.value_info.extend(vis)

    if not any(o.domain == fmt.DOMAIN for o in m.opset_import):
        m.opset_import.append(helper.make_opsetid(fmt.DOMAIN, fmt.DOMAIN_VERSION))
    if flavour == "portable":
        m.functions.extend(functions)
        m.ir_version = max(m.ir_version, fmt.PORTABLE_MIN_IR_VERSION)
    else:
        m = _to_fork_versions(m, [node.name for _, node in replacements])
        helper.set_model_props(m, {**{p.key: p.value for p in m.metadata_props}, **metadata})
        _check(m, flavour)
    return m


def save(model: onnx.ModelProto, path: str | os.PathLike[str]) -> None:
    """Write ``model`` to ``path`` atomically."""
    write_bytes_atomic(path, model.SerializeToString())


# --- checks ------------------------------------------------------------------------------------


def _check_fork_expressible(cp: CompiledPartition) -> None:
    where = f"partition {cp.partition.index}"
    if cp.backend == "emulate" or not cp.hef:
        raise HailoOpFormatError(
            f"fork flavour cannot hold {where}: it is emulated and has no HEF "
            "(Hailo's fork runs only HEFs); write the portable flavour"
        )
    if len(cp.inputs) != 1:
        raise HailoOpFormatError(
            f"fork flavour cannot hold {where}: it has {len(cp.inputs)} inputs and Hailo's fork "
            "runs HailoOp nodes with exactly one input; write the portable flavour"
        )
    if len(cp.outputs) > fmt.FORK_MAX_OUTPUTS:
        raise HailoOpFormatError(
            f"fork flavour cannot hold {where}: {len(cp.outputs)} outputs, the fork allows "
            f"{fmt.FORK_MAX_OUTPUTS}"
        )
    for s in cp.inputs + cp.outputs:
        if s.dtype not in fmt.FORK_ELEM_TYPES:
            raise HailoOpFormatError(
                f"fork flavour cannot hold {where}: tensor {s.tensor!r} is {s.dtype}, the fork "
                f"takes only {'/'.join(fmt.FORK_ELEM_TYPES)}"
            )


def _partition_nodes(
    cp: CompiledPartition, node_by_name: dict[str, onnx.NodeProto], taken: set[str]
) -> list[onnx.NodeProto]:
    part = cp.partition
    if not part.nodes:
        raise HailoOpFormatError(f"partition {part.index} has no nodes")
    if not cp.inputs or not cp.outputs:
        raise HailoOpFormatError(f"partition {part.index} needs at least one input and output")
    missing = [n for n in part.nodes if n not in node_by_name]
    if missing:
        raise HailoOpFormatError(f"partition {part.index}: nodes not in the model: {missing[:5]}")
    twice = [n for n in part.nodes if n in taken]
    if twice:
        raise HailoOpFormatError(
            f"partition {part.index}: nodes already in another partition: {twice[:5]}"
        )
    taken.update(part.nodes)
    hailo = [n for n in part.nodes if is_hailo_op(node_by_name[n])]
    if hailo:
        raise HailoOpFormatError(f"partition {part.index}: contains HailoOp nodes {hailo[:5]}")
    wanted = set(part.nodes)
    return [n for n in node_by_name.values() if n.name in wanted]


def _node_reads(node: onnx.NodeProto) -> list[str]:
    """Tensors a node reads: its inputs and outer-scope names used by its subgraphs (no omitted
    optional input)."""
    return [x for x in node_reads(node) if x]


def _check_boundary(
    cp: CompiledPartition,
    nodes: list[onnx.NodeProto],
    graph: onnx.GraphProto,
    init_by_name: dict[str, onnx.TensorProto],
) -> None:
    """The streams must be exactly the tensors that cross the partition boundary."""
    part = cp.partition
    produced = {o for n in nodes for o in n.output if o}
    needed = {x for n in nodes for x in _node_reads(n)} - produced - set(init_by_name)
    declared_in = [s.tensor for s in cp.inputs]
    if set(declared_in) != needed or len(declared_in) != len(set(declared_in)):
        raise HailoOpFormatError(
            f"partition {part.index}: input streams {declared_in} do not match the tensors its "
            f"nodes read from outside {sorted(needed)}"
        )
    names = {n.name for n in nodes}
    used_outside = {x for n in graph.node if n.name not in names for x in _node_reads(n)}
    used_outside |= {o.name for o in graph.output}
    escaping = produced & used_outside
    declared_out = [s.tensor for s in cp.outputs]
    if not escaping <= set(declared_out) or not set(declared_out) <= produced:
        raise HailoOpFormatError(
            f"partition {part.index}: output streams {declared_out} do not cover the tensors "
            f"used outside it {sorted(escaping)} (or name tensors it does not produce)"
        )
    if len(declared_out) != len(set(declared_out)):
        raise HailoOpFormatError(f"partition {part.index}: duplicate output streams")


def _ordered(graph: onnx.GraphProto, names: set[str]) -> list[str]:
    """``names`` in graph order."""
    return [n.name for n in graph.node if n.name in names]


def _value_info(s: StreamSpec) -> onnx.ValueInfoProto:
    """A value info for a boundary tensor the model leaves untyped, from its stream spec."""
    dims = [d if d >= 0 else None for d in s.shape]
    return helper.make_tensor_value_info(s.tensor, elem_type_of(s.dtype), dims)


def _unique(base: str, taken: set[str]) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


# --- the node ----------------------------------------------------------------------------------


def _metadata(cp: CompiledPartition) -> dict[str, Any]:
    payload = cp.emulation if cp.backend == "emulate" else cp.hef
    if not payload:
        what = "emulation model" if cp.backend == "emulate" else "HEF"
        raise HailoOpFormatError(
            f"partition {cp.partition.index} (backend {cp.backend!r}) has no {what}"
        )
    meta: dict[str, Any] = {
        "format": fmt.META_FORMAT_VERSION,
        "writer": f"hailo-ort {__version__}",
        "arch": cp.arch,
        "backend": cp.backend,
        "toolchain": dict(cp.toolchain),
        "partition": cp.partition.to_dict(),
        "inputs": [s.to_dict() for s in cp.inputs],
        "outputs": [s.to_dict() for s in cp.outputs],
        "payload_sha256": payload_sha256(payload),
        "payload_size": len(payload),
    }
    try:
        json.dumps(cp.report)
        meta["report"] = dict(cp.report)
    except (TypeError, ValueError) as e:
        raise HailoOpFormatError(
            f"partition {cp.partition.index}: report is not JSON-serializable: {e}"
        ) from e
    return meta


def _order_code(s: StreamSpec) -> int:
    return fmt.host_format_order(s.host_order, len(s.shape))


def _hailo_node(
    cp: CompiledPartition,
    node_name: str,
    meta: dict[str, Any],
    flavour: str,
    infos: dict[str, onnx.ValueInfoProto],
) -> onnx.NodeProto:
    for s in cp.inputs + cp.outputs:
        vi = infos.get(s.tensor)
        actual = tensor_dtype(vi) if vi is not None else None
        if actual is not None and actual != s.dtype:
            raise HailoOpFormatError(
                f"partition {cp.partition.index}: stream {s.vstream!r} says tensor {s.tensor!r} "
                f"is {s.dtype}, the model has {actual}"
            )
        shape = tensor_shape(vi) if vi is not None else None
        if shape is not None and (
            len(shape) != len(s.shape)
            or any(a >= 0 and b >= 0 and a != b for a, b in zip(shape, s.shape))
        ):
            raise HailoOpFormatError(
                f"partition {cp.partition.index}: stream {s.vstream!r} says tensor {s.tensor!r} "
                f"has shape {s.shape}, the model has {shape}"
            )
    node = helper.make_node(
        fmt.OP_TYPE,
        [s.tensor for s in cp.inputs],
        [s.tensor for s in cp.outputs],
        name=node_name,
        domain=fmt.DOMAIN,
    )
    attrs: list[onnx.AttributeProto] = [
        helper.make_attribute(
            fmt.ATTR_HEF, bytes(cp.hef or b""), attr_type=onnx.AttributeProto.STRING
        ),
        helper.make_attribute(fmt.ATTR_SORTED_INPUTS, [s.vstream for s in cp.inputs]),
        helper.make_attribute(fmt.ATTR_SORTED_OUTPUTS, [s.vstream for s in cp.outputs]),
        helper.make_attribute(fmt.ATTR_INPUT_ORDER, [_order_code(s) for s in cp.inputs]),
        helper.make_attribute(fmt.ATTR_OUTPUT_ORDER, [_order_code(s) for s in cp.outputs]),
        helper.make_attribute(
            fmt.ATTR_INPUT_QUANTIZED, [int(s.dtype != "float32") for s in cp.inputs]
        ),
        helper.make_attribute(
            fmt.ATTR_OUTPUT_QUANTIZED, [int(s.dtype != "float32") for s in cp.outputs]
        ),
    ]
    if flavour == "portable":
        attrs.append(helper.make_attribute(fmt.ATTR_META, json.dumps(meta, sort_keys=True)))
        if cp.backend == "emulate":
            attrs.append(
                helper.make_attribute(
                    fmt.ATTR_EMULATION,
                    bytes(cp.emulation or b""),
                    attr_type=onnx.AttributeProto.STRING,
                )
            )
    node.attribute.extend(attrs)
    return node


def _fallback_function(
    model: onnx.ModelProto,
    cp: CompiledPartition,
    nodes: list[onnx.NodeProto],
    overload: str,
    infos: dict[str, onnx.ValueInfoProto],
    init_by_name: dict[str, onnx.TensorProto],
) -> onnx.FunctionProto:
    """The float subgraph as a FunctionProto overload; weights become Constant nodes."""
    inputs = {s.tensor for s in cp.inputs}
    reads = {x for n in nodes for x in _node_reads(n)}
    constants = []
    for name in sorted(reads):
        if name in init_by_name and name not in inputs:
            constants.append(
                helper.make_node(
                    "Constant", [], [name], name=f"{name}__const", value=init_by_name[name]
                )
            )
    body = constants + [_copy(n) for n in nodes]
    opsets = [o for o in model.opset_import if o.domain != fmt.DOMAIN]
    if not any(o.domain in ("", "ai.onnx") for o in opsets) and constants:
        opsets.append(helper.make_opsetid("", 13))
    func = helper.make_function(
        fmt.DOMAIN,
        fmt.OP_TYPE,
        [s.tensor for s in cp.inputs],
        [s.tensor for s in cp.outputs],
        body,
        opsets,
        overload=overload,
        doc_string=f"CPU fallback of device partition {cp.partition.index} (hailo-ort)",
    )
    produced = {o for n in nodes for o in n.output if o}
    func.value_info.extend(infos[t] for t in sorted(produced) if t in infos)
    return func


def _copy(node: onnx.NodeProto) -> onnx.NodeProto:
    out = onnx.NodeProto()
    out.CopyFrom(node)
    return out


def _topological(nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """Stable topological order (keeps the given order where it is already valid)."""
    order, stuck = topological_order(nodes, [_node_reads(n) for n in nodes])
    if stuck:
        raise HailoOpFormatError(
            "a partition is not convex: replacing it by one node creates a cycle through "
            f"{[nodes[i].name for i in stuck][:5]} (a CPU node both reads from and feeds the "
            "partition)"
        )
    return [nodes[i] for i in order]


# --- fork flavour versions ---------------------------------------------------------------------


def _default_opset(m: onnx.ModelProto) -> int | None:
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return None


def _to_fork_versions(m: onnx.ModelProto, hailo_nodes: list[str]) -> onnx.ModelProto:
    if m.functions:
        # Hailo's fork (ORT 1.11/1.14) predates most function support: inline them away.
        from onnx import inliner

        try:
            m = inliner.inline_local_functions(m)
        except Exception as e:  # the inliner raises bare C++ errors
            raise HailoOpFormatError(
                f"fork flavour: cannot inline the model's local functions ({e}); write the "
                "portable flavour"
            ) from e
    opset = _default_opset(m)
    if opset is not None and opset > fmt.FORK_MAX_OPSET:
        from onnx import version_converter

        try:
            converted = version_converter.convert_version(m, fmt.FORK_MAX_OPSET)
        except Exception as e:  # the converter raises bare RuntimeErrors from C++
            first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise HailoOpFormatError(
                f"fork flavour needs opset ≤ {fmt.FORK_MAX_OPSET} but the model's CPU part uses "
                f"opset {opset} and onnx.version_converter cannot lower it ({first}); write the "
                "portable flavour"
            ) from e
        names = {n.name for n in converted.graph.node}
        if not set(hailo_nodes) <= names:
            raise HailoOpFormatError(
                "fork flavour: converting to opset 16 lost HailoOp nodes; write the portable flavour"
            )
        m = converted
    m.ir_version = min(m.ir_version, fmt.FORK_MAX_IR_VERSION)
    return m


def _check(m: onnx.ModelProto, flavour: str) -> None:
    try:
        onnx.checker.check_model(m)
    except onnx.checker.ValidationError as e:
        first = str(e).strip().splitlines()[0]
        raise HailoOpFormatError(f"{flavour} flavour: the written model is invalid: {first}") from e


# --- fallback bodies ---------------------------------------------------------------------------


def strip_fallback(model: ModelLike) -> onnx.ModelProto:
    """A copy of a portable model without the HailoOp function bodies (smaller; device only).

    The HailoOp nodes keep all their attributes; the result needs a Hailo device (or hailo-ort's
    emulator) to run.
    """
    m = load_model(model, copy=True)
    keep = [f for f in m.functions if (f.domain, f.name) != (fmt.DOMAIN, fmt.OP_TYPE)]
    del m.functions[:]
    m.functions.extend(keep)
    for n in m.graph.node:
        if is_hailo_op(n):
            n.overload = ""
    return m


def fallback_model(model: ModelLike, inline: bool = True) -> onnx.ModelProto:
    """The model the CPU runs when there is no device.

    A portable model runs as it is on an onnxruntime that knows IR-10 function overloads
    (``inline=False`` returns it unchanged). With ``inline=True`` (default) the function bodies
    are inlined into a plain ONNX graph without any ``ai.hailo`` node, which every onnxruntime
    runs correctly: builds that predate overload support would otherwise give every HailoOp
    node the same body. Raises HailoOpFormatError naming the HailoOp nodes that have no CPU
    body (fork flavour, or a stripped model).
    """
    m = load_model(model, copy=True)
    bodies = {f.overload for f in m.functions if (f.domain, f.name) == (fmt.DOMAIN, fmt.OP_TYPE)}
    missing = [
        hailo_node_name(n, i)
        for i, n in enumerate(m.graph.node)
        if is_hailo_op(n) and n.overload not in bodies
    ]
    if missing:
        raise HailoOpFormatError(
            f"HailoOp node(s) {missing} have no CPU fallback body (fork flavour or stripped "
            "model): they need a Hailo device"
        )
    if not inline:
        return m
    from onnx import inliner

    try:
        return inliner.inline_local_functions(m)
    except Exception as e:  # the inliner raises bare C++ errors
        raise HailoOpFormatError(f"cannot inline the CPU fallback bodies: {e}") from e


# --- flavour conversion ------------------------------------------------------------------------


def to_fork(model: ModelLike) -> onnx.ModelProto:
    """Convert a model with HailoOp nodes (e.g. a portable file) to the fork flavour.

    Our ``hailo_ort_*`` attributes move to ``model.metadata_props``, the CPU bodies are dropped,
    versions are lowered as :func:`embed` does for ``flavour="fork"``. Refused like there:
    emulated partitions, partitions with several inputs, a CPU part needing opset > 16.
    """
    m = load_model(model, copy=True)
    nodes = read(m)
    if not nodes:
        raise HailoOpFormatError("to_fork: the model has no ai.hailo::HailoOp node")
    for hn in nodes:
        _check_fork_expressible(hn.compiled)
    props = {p.key: p.value for p in m.metadata_props}
    typed = {v.name for v in list(m.graph.value_info) + list(m.graph.output) + list(m.graph.input)}
    for hn in nodes:
        node = m.graph.node[hn.node_index]
        meta = next((a.s for a in node.attribute if a.name == fmt.ATTR_META), None)
        if meta is not None:
            props[fmt.META_KEY_PREFIX + hn.node_name] = meta.decode("utf-8")
        keep = [a for a in node.attribute if not a.name.startswith(fmt.OUR_PREFIX)]
        del node.attribute[:]
        node.attribute.extend(keep)
        node.overload = ""
        if not node.name:
            node.name = hn.node_name
        for st in hn.compiled.outputs:
            if st.tensor not in typed:
                m.graph.value_info.append(_value_info(st))
                typed.add(st.tensor)
    keep_funcs = [f for f in m.functions if (f.domain, f.name) != (fmt.DOMAIN, fmt.OP_TYPE)]
    del m.functions[:]
    m.functions.extend(keep_funcs)
    del m.metadata_props[:]
    helper.set_model_props(m, props)
    m = _to_fork_versions(m, [hn.node_name for hn in nodes])
    _check(m, "fork")
    return m
