"""Independent checks of a partition result, written against the raw ONNX graph (not the
partitioner's own GraphIndex), used by the partition and inspect tests."""

from __future__ import annotations

import onnx


def data_edges(model: onnx.ModelProto) -> tuple[list[str], list[tuple[str, str]]]:
    """Node names and producer→consumer edges over non-constant tensors."""
    g = model.graph
    constants = {t.name for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            constants.update(n.output)
    producer = {o: n.name for n in g.node for o in n.output if o}
    edges = set()
    for n in g.node:
        reads = list(n.input)
        for a in n.attribute:
            if a.HasField("g"):
                reads += [t for sub in a.g.node for t in sub.input]
        for t in reads:
            if t in producer and t not in constants and producer[t] != n.name:
                edges.add((producer[t], n.name))
    return [n.name for n in g.node], sorted(edges)


def contraction_has_cycle(model: onnx.ModelProto, partitions: list[list[str]]) -> bool:
    """Contract every partition to one vertex and look for a cycle with a colouring DFS."""
    names, edges = data_edges(model)
    vertex = {name: name for name in names}
    for k, nodes in enumerate(partitions):
        for name in nodes:
            vertex[name] = f"<partition {k}>"
    adj: dict[str, set[str]] = {}
    for a, b in edges:
        va, vb = vertex[a], vertex[b]
        if va != vb:
            adj.setdefault(va, set()).add(vb)
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(set(vertex.values()), white)
    for start in colour:
        if colour[start] != white:
            continue
        stack = [(start, iter(sorted(adj.get(start, ()))))]
        colour[start] = grey
        while stack:
            v, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[v] = black
                stack.pop()
            elif colour[nxt] == grey:
                return True
            elif colour[nxt] == white:
                colour[nxt] = grey
                stack.append((nxt, iter(sorted(adj.get(nxt, ())))))
    return False


def boundary(model: onnx.ModelProto, nodes: list[str]) -> tuple[set[str], set[str]]:
    """(inputs, outputs) of a node set: non-constant tensors read from outside / used outside."""
    g = model.graph
    members = set(nodes)
    constants = {t.name for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            constants.update(n.output)
    produced_inside = {o for n in g.node if n.name in members for o in n.output if o}
    graph_outputs = {o.name for o in g.output}
    ins, outs = set(), set()
    for n in g.node:
        for t in n.input:
            if not t or t in constants:
                continue
            if n.name in members and t not in produced_inside:
                ins.add(t)
            if n.name not in members and t in produced_inside:
                outs.add(t)
    outs |= produced_inside & graph_outputs
    return ins, outs


def weakly_connected(model: onnx.ModelProto, nodes: list[str]) -> bool:
    """Whether the nodes form one piece through data edges among themselves (BFS)."""
    members = set(nodes)
    _, edges = data_edges(model)
    adj: dict[str, set[str]] = {n: set() for n in members}
    for a, b in edges:
        if a in members and b in members:
            adj[a].add(b)
            adj[b].add(a)
    constants = {n.name for n in model.graph.node if n.op_type == "Constant"}
    start = next((n for n in nodes if n not in constants), None)
    if start is None:
        return True
    seen = {start}
    todo = [start]
    while todo:
        for m in adj[todo.pop()]:
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen >= members - constants
