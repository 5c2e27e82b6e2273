"""Cut a sub-model out of a prepared ONNX model (used by embed, compile and the runtime plan)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import onnx
from onnx import helper

from ..errors import ModelError


def value_infos(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """Every typed tensor of the graph by name: inputs, outputs, value_info and initializers."""
    g = model.graph
    infos: dict[str, onnx.ValueInfoProto] = {}
    for init in g.initializer:
        infos[init.name] = helper.make_tensor_value_info(init.name, init.data_type, init.dims)
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        infos[vi.name] = vi
    return infos


def extract_subgraph(
    model: onnx.ModelProto,
    node_names: Iterable[str],
    inputs: Sequence[str],
    outputs: Sequence[str],
    name: str | None = None,
) -> onnx.ModelProto:
    """A standalone model of the named nodes, with graph inputs ``inputs`` and outputs ``outputs``.

    Initializers the nodes use are copied in; boundary tensors are typed from the model's
    value_info (run shape inference on ``model`` first). Subgraph attributes (If/Loop bodies) are
    kept as they are, with the outer-scope tensors they read added as inputs of the cut only
    when listed in ``inputs``.
    """
    wanted = set(node_names)
    nodes = [n for n in model.graph.node if n.name in wanted]
    missing = wanted - {n.name for n in nodes}
    if missing:
        raise ModelError(f"extract_subgraph: unknown node names {sorted(missing)[:5]}")
    infos = value_infos(model)
    init_by_name = {i.name: i for i in model.graph.initializer}
    input_set = set(inputs)
    used: set[str] = set()
    for n in nodes:
        used.update(x for x in n.input if x)
    initializers = [
        init_by_name[x] for x in sorted(used) if x in init_by_name and x not in input_set
    ]

    def typed(tensor: str) -> onnx.ValueInfoProto:
        if tensor not in infos:
            raise ModelError(
                f"extract_subgraph: tensor {tensor!r} has no type; run shape inference"
            )
        vi = onnx.ValueInfoProto()
        vi.CopyFrom(infos[tensor])
        return vi

    graph = helper.make_graph(
        nodes,
        name or f"{model.graph.name}_sub",
        [typed(t) for t in inputs],
        [typed(t) for t in outputs],
        initializer=initializers,
    )
    produced = {o for n in nodes for o in n.output}
    graph.value_info.extend(
        infos[t] for t in sorted(produced) if t in infos and t not in set(outputs)
    )
    sub = helper.make_model(
        graph,
        opset_imports=list(model.opset_import),
        ir_version=model.ir_version,
        producer_name="hailo-ort",
    )
    sub.functions.extend(model.functions)
    return sub
