"""Stable topological order of ONNX nodes (shared by the partitioner and the HailoOp writer)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

import onnx


def node_reads(node: onnx.NodeProto) -> list[str]:
    """The tensors ``node`` reads: its inputs (as listed, ``""`` for an omitted one), then each
    outer-scope name read inside its subgraph attributes (If/Loop bodies), once."""
    names = list(node.input)
    for attr in node.attribute:
        graphs = ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
        for g in graphs:
            local = {i.name for i in g.input} | {t.name for t in g.initializer}
            for sub in g.node:
                local.update(sub.output)
            for sub in g.node:
                for t in node_reads(sub):
                    if t and t not in local and t not in names:
                        names.append(t)
    return names


def topological_order(
    nodes: Sequence[onnx.NodeProto], inputs: Sequence[Iterable[str]]
) -> tuple[list[int], list[int]]:
    """Indices of ``nodes`` in a topological order, and the indices that could not be placed.

    ``inputs[i]`` are the tensors node ``i`` reads (with the outer-scope reads of its
    subgraphs, see :func:`node_reads`). The given order is kept where it is valid: among ready nodes the earliest comes
    first, so an already sorted list comes back unchanged. A non-empty second list means the
    graph has a cycle through those nodes.
    """
    producer: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for out in node.output:
            if out:
                producer[out] = i
    deps_of = [
        {producer[t] for t in reads if t in producer and producer[t] != i}
        for i, reads in enumerate(inputs)
    ]
    if all(d < i for i, deps in enumerate(deps_of) for d in deps):
        return list(range(len(nodes))), []
    remaining = [len(deps) for deps in deps_of]
    users: list[list[int]] = [[] for _ in nodes]
    for i, deps in enumerate(deps_of):
        for d in deps:
            users[d].append(i)
    ready = [i for i, r in enumerate(remaining) if r == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            remaining[u] -= 1
            if remaining[u] == 0:
                heapq.heappush(ready, u)
    stuck = [i for i, r in enumerate(remaining) if r > 0]
    return order, stuck
