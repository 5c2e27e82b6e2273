"""The partitioner: which nodes go to the Hailo device, in which partition, and why the rest stay
on the CPU.

Steps, all linear in the graph size (bit sets over partition ids, no node-to-node reachability):

1. every node is checked against the support table (op, constraints, static shapes);
2. leading pre-processing (Cast, input Transpose, normalisation by constants) is left on the CPU
   and normalisation is reported as a candidate for the DFC ``normalization`` command;
3. trailing post-processing (Reshape/Transpose/Concat/Split tails, Softmax/Sigmoid of the
   outputs, anchor decoding, NMS, TopK) is trimmed back to the last compute layers, which also
   keeps a Concat of tensors with different value ranges (boxes vs class logits) off the device;
4. the remaining device candidates are grouped in topological order; a node joins the group of
   its producers only when that keeps every group *convex* (no path leaves a group and comes
   back) and the groups' contraction acyclic;
5. one partition is preferred: groups other than the largest are kept only when they carry a real
   share of the FLOPs (≥ 5% of the model or ≥ 25% of the largest partition: HEF/CPU/HEF for an
   unsupported op in the middle); smaller ones go to the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..graph.prepared import PreparedModel
from .graphindex import GraphIndex
from .support import SupportTable
from .types import CpuNode, Normalization, Partition, TensorSpec

#: ops left on the CPU when they end the graph (all their consumers are on the CPU)
TAIL_OPS = frozenset(
    {
        "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Concat", "Split",
        "Slice", "Gather", "Cast", "Expand", "Tile", "Softmax", "LogSoftmax", "Sigmoid", "ArgMax",
        "TopK", "NonMaxSuppression",
    }
)  # fmt: skip
#: ops that may be input pre-processing when they come straight from a graph input
PRE_LAYOUT_OPS = frozenset({"Cast", "Transpose", "Identity"})
AFFINE_OPS = frozenset({"Mul", "Add", "Sub", "Div"})
#: ops whose output is a raw linear response (no activation): the value range is the layer's own
LINEAR_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})

#: a partition besides the largest is kept when it has this share of the model's FLOPs...
DEFAULT_MIN_PARTITION_SHARE = 0.05
#: ...or this share of the largest partition's FLOPs (a chain of similar segments all stay)
SIBLING_SHARE = 0.25


@dataclass
class PartitionPlan:
    """What the partitioner decided."""

    partitions: list[Partition]
    cpu_nodes: list[CpuNode]
    normalization: list[Normalization]
    placement: dict[str, int | None]  # node name → partition index, None for the CPU
    index: GraphIndex = field(repr=False)


class _Groups:
    """Groups of device nodes with union-find merging and group-level ancestor bit sets."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.alias: list[int] = []  # bit set of group ids merged into this root
        self.anc: list[int] = []  # bit set of group ids that reach this group (closed)
        self.grown = 0  # bit set of groups whose ``anc`` grew after creation

    def new(self, anc: int) -> int:
        g = len(self.parent)
        self.parent.append(g)
        self.alias.append(1 << g)
        self.anc.append(anc)
        return g

    def root(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def close(self, bits: int) -> int:
        """``bits`` plus the ancestors of every group in it that grew since it was recorded."""
        extra = bits & self.grown
        while extra:
            low = extra & -extra
            bits |= self.anc[self.root(low.bit_length() - 1)]
            extra ^= low
        return bits

    def add_ancestors(self, g: int, bits: int) -> None:
        g = self.root(g)
        new = bits & ~self.anc[g]
        if not new:
            return
        self.anc[g] |= bits
        self.grown |= self.alias[g]
        # groups below g gain the same ancestors (keeps ``anc`` transitively closed)
        for d in range(len(self.parent)):
            if self.parent[d] == d and d != g and self.anc[d] & self.alias[g]:
                if bits & ~self.anc[d]:
                    self.anc[d] |= bits
                    self.grown |= self.alias[d]

    def merge(self, roots: list[int]) -> int:
        r = roots[0]
        for o in roots[1:]:
            self.parent[o] = r
            self.alias[r] |= self.alias[o]
            self.anc[r] |= self.anc[o]
        self.anc[r] &= ~self.alias[r]
        self.grown |= self.alias[r]
        for d in range(len(self.parent)):
            if self.parent[d] == d and d != r and self.anc[d] & self.alias[r]:
                self.anc[d] |= self.anc[r] | self.alias[r]
                self.grown |= self.alias[d]
        return r


def _affine_constant(gi: GraphIndex, node, channels: int | None) -> np.ndarray | None:
    """The constant operand of an affine pre-processing node as a scalar or per-channel vector."""
    consts = [t for t in node.input if t and gi.is_constant(t)]
    if len(consts) != 1 or len(gi.data_inputs(node)) != 1:
        return None
    value = gi.const_value(consts[0])
    if value is None or not np.issubdtype(value.dtype, np.number):
        return None
    flat = np.asarray(value, dtype=np.float64).reshape(-1)
    if flat.size == 1:
        return flat
    if channels is not None and flat.size == channels:
        shape = list(value.shape)
        if sum(1 for d in shape if d != 1) == 1:
            return flat
    return None


def partition_model(
    prepared: PreparedModel,
    table: SupportTable,
    *,
    min_partition_share: float = DEFAULT_MIN_PARTITION_SHARE,
) -> PartitionPlan:
    """Place every node of a prepared model on a device partition or on the CPU (with a reason)."""
    gi = GraphIndex(prepared)
    n = len(gi.nodes)
    nodes = gi.nodes
    reason: list[str | None] = [None] * n
    is_const_node = gi.constant_node

    # 1. support table
    for i, nd in enumerate(nodes):
        if is_const_node[i]:
            continue
        verdict = table.check(nd, gi)
        if verdict is not None:
            reason[i] = verdict[1]

    # 2. leading pre-processing and normalisation
    normalization = _find_preprocessing(gi, reason)

    # 3. trailing post-processing
    _trim_tail(gi, reason, candidates=None)

    # 4. convex grouping
    group, blocked = _group(gi, reason)

    # 5. keep the significant groups
    total_flops = sum(gi.flops(i) for i in range(n))
    kept = _choose_groups(gi, group, reason, blocked, total_flops, min_partition_share)
    # trimming again: a group dropped at step 5 can leave a kept group ending in a tail op
    members: dict[int, list[int]] = {g: [] for g in kept}
    for i, g in enumerate(group):
        if g in members:
            members[g].append(i)
    changed = _trim_tail(gi, reason, candidates=group)
    if changed:
        for g in list(kept):
            members[g] = [i for i in members[g] if reason[i] is None]
            if not any(gi.params(i) > 0 for i in members[g]):
                for i in members[g]:
                    reason[i] = "too small a partition: no layer with weights left after trimming"
                    group[i] = -1
                del kept[kept.index(g)]
                del members[g]
    # a partition is one connected piece: split groups that trimming left in several pieces
    # (each piece of a convex group is convex), then apply the size rules to the pieces
    next_id = max(group, default=-1) + 1
    split = False
    for g in list(kept):
        pieces = _components(gi, members[g])
        if len(pieces) > 1:
            split = True
            kept.remove(g)
            del members[g]
            for piece in pieces:
                for i in piece:
                    group[i] = next_id
                members[next_id] = piece
                kept.append(next_id)
                next_id += 1
    if split:
        kept = _choose_groups(gi, group, reason, blocked, total_flops, min_partition_share)
        members = {g: members[g] for g in kept}

    # constants go with their consumers
    for i in range(n):
        if not is_const_node[i]:
            continue
        cons = {group[c] for o in nodes[i].output for c in gi.consumers.get(o, [])}
        if len(cons) == 1 and (g := next(iter(cons))) in members:
            group[i] = g
            members[g].append(i)
        else:
            group[i] = -1
            reason[i] = "constant used on the CPU"

    # 6. verify the contraction is acyclic (independent check; drops partitions if it ever fails)
    order = sorted(kept, key=lambda g: -sum(gi.flops(i) for i in members[g]))
    while order and not contraction_is_acyclic(gi, group, set(order)):
        victim = order.pop()
        for i in members.pop(victim):
            group[i] = -1
            reason[i] = "cycle avoidance: this partition would make the graph cyclic"
    order.sort(key=lambda g: min(members[g]))

    partitions: list[Partition] = []
    placement: dict[str, int | None] = {name: None for name in gi.names}
    for index, g in enumerate(order):
        ids = sorted(members[g])
        partitions.append(_make_partition(gi, index, ids))
        for i in ids:
            placement[gi.names[i]] = index
    cpu_nodes = [
        CpuNode(gi.names[i], nodes[i].op_type, reason[i] or "left on the CPU")
        for i in range(n)
        if placement[gi.names[i]] is None
    ]
    return PartitionPlan(partitions, cpu_nodes, normalization, placement, gi)


def _find_preprocessing(gi: GraphIndex, reason: list[str | None]) -> list[Normalization]:
    n = len(gi.nodes)
    pre = [False] * n
    affine: dict[int, tuple[np.ndarray, np.ndarray, str, list[int]]] = {}
    graph_inputs = set(gi.graph_inputs)
    for i, nd in enumerate(gi.nodes):
        if gi.constant_node[i]:
            continue
        data = gi.data_inputs(nd)
        if not data or not all(
            t in graph_inputs or (t in gi.producer and pre[gi.producer[t]]) for t in data
        ):
            continue
        if nd.op_type in PRE_LAYOUT_OPS and len(data) == 1:
            pre[i] = True
            reason[i] = f"pre-processing: input {nd.op_type} kept on the CPU"
            continue
        if nd.op_type in AFFINE_OPS:
            shape = gi.shape(data[0]) or []
            channels = shape[1] if len(shape) == 4 else (shape[-1] if shape else None)
            k = _affine_constant(gi, nd, channels)
            if k is None:
                continue
            if nd.op_type == "Sub" and nd.input[0] != data[0]:
                continue  # const - x: not a normalisation
            if nd.op_type == "Div" and nd.input[0] != data[0]:
                continue
            src = gi.producer.get(data[0])
            if src is not None and src in affine:
                a, b, origin, chain = affine[src]
            else:
                a, b, origin, chain = np.ones(1), np.zeros(1), data[0], []
            if nd.op_type == "Mul":
                a, b = a * k, b * k
            elif nd.op_type == "Div":
                if np.any(k == 0):
                    continue
                a, b = a / k, b / k
            elif nd.op_type == "Add":
                b = b + k
            else:
                b = b - k
            pre[i] = True
            affine[i] = (a, b, origin, [*chain, i])
            reason[i] = (
                "pre-processing: input normalisation by constants (candidate for the DFC normalization command)"
            )
    result: list[Normalization] = []
    for i, (a, b, origin, chain) in affine.items():
        # report each chain once, at its last affine node
        if any(s in affine for s in gi.succs[i]):
            continue
        size = max(a.size, b.size)
        a = np.broadcast_to(a, (size,))
        b = np.broadcast_to(b, (size,))
        if np.any(a == 0):
            continue
        std = 1.0 / a
        mean = -b / a
        result.append(
            Normalization(
                input=origin,
                mean=[float(f"{v:.7g}") + 0.0 for v in mean],  # + 0.0: no "-0" in the script
                std=[float(f"{v:.7g}") for v in std],
                nodes=[gi.names[j] for j in chain],
            )
        )
    return result


def _components(gi: GraphIndex, ids: list[int]) -> list[list[int]]:
    """Weakly connected pieces of a node set (union-find over data edges inside it)."""
    members = set(ids)
    parent = {i: i for i in ids}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in ids:
        for s in gi.succs[i]:
            if s in members:
                a, b = find(i), find(s)
                if a != b:
                    parent[b] = a
    pieces: dict[int, list[int]] = {}
    for i in ids:  # ids are in topological order, so are the pieces
        pieces.setdefault(find(i), []).append(i)
    return list(pieces.values())


def _trim_tail(
    gi: GraphIndex,
    reason: list[str | None],
    candidates: list[int] | None,
) -> bool:
    """Move trailing post-processing nodes (TAIL_OPS whose consumers are all on the CPU) to the
    CPU, walking backwards so whole tails go. Returns whether anything moved."""
    changed = False
    for i in range(len(gi.nodes) - 1, -1, -1):
        if reason[i] is not None or gi.constant_node[i]:
            continue
        if candidates is not None and candidates[i] < 0:
            continue
        nd = gi.nodes[i]
        if nd.op_type not in TAIL_OPS:
            continue
        if any(reason[s] is None for s in gi.succs[i]):
            continue
        changed = True
        if candidates is not None:
            candidates[i] = -1
        if nd.op_type == "Concat" and _mixes_linear_outputs(gi, i):
            reason[i] = (
                "post-processing: Concat of raw head outputs with different value ranges "
                "(e.g. box regression vs class logits) is kept off the device for quantization"
            )
        else:
            reason[i] = f"post-processing: trailing {nd.op_type} trimmed to the CPU"
    return changed


def _mixes_linear_outputs(gi: GraphIndex, i: int) -> bool:
    producers = {gi.producer.get(t) for t in gi.data_inputs(gi.nodes[i])}
    linear = [p for p in producers if p is not None and gi.nodes[p].op_type in LINEAR_OPS]
    return len(linear) >= 2


def _group(gi: GraphIndex, reason: list[str | None]) -> tuple[list[int], list[bool]]:
    """Assign device candidates to convex groups in one topological pass.

    ``reach[v]`` is the bit set of groups from which v can be reached by a path that has left the
    group; a node may join group g only when g is not in its (ancestor-closed) reach.
    """
    n = len(gi.nodes)
    groups = _Groups()
    group = [-1] * n
    blocked = [False] * n
    reach = [0] * n
    for v in range(n):
        if gi.constant_node[v]:
            continue
        base = 0
        pred_groups: list[int] = []
        for u in gi.preds[v]:
            base |= reach[u]
            if group[u] >= 0:
                r = groups.root(group[u])
                if r not in pred_groups:
                    pred_groups.append(r)
        if reason[v] is not None:
            bits = groups.close(base)
            for r in pred_groups:
                bits |= (1 << r) | groups.anc[r]
            reach[v] = bits
            continue

        def closure_for(
            targets: list[int], base: int = base, pred_groups: list[int] = pred_groups
        ) -> tuple[int, int]:
            # ``reach`` values are ancestor-closed when stored; ``close`` adds later growth
            bits = groups.close(base)
            for r in pred_groups:
                if r not in targets:
                    bits |= (1 << r) | groups.anc[r]
            alias = 0
            for t in targets:
                alias |= groups.alias[t]
            return bits, alias

        chosen = -1
        if pred_groups:
            options: list[list[int]] = []
            if len(pred_groups) > 1:
                options.append(list(pred_groups))
            options.extend([r] for r in pred_groups)
            for targets in options:
                closed, alias = closure_for(targets)
                if closed & alias:
                    continue
                if len(targets) > 1 and any(groups.anc[t] & alias for t in targets):
                    continue
                chosen = groups.merge(targets) if len(targets) > 1 else targets[0]
                groups.add_ancestors(chosen, closed)
                reach[v] = closed
                break
            else:
                blocked[v] = True
        if chosen < 0:
            closed, _ = closure_for([])
            chosen = groups.new(closed)
            reach[v] = closed
        group[v] = chosen
    # resolve merged groups to their roots
    for v in range(n):
        if group[v] >= 0:
            group[v] = groups.root(group[v])
    return group, blocked


def _choose_groups(
    gi: GraphIndex,
    group: list[int],
    reason: list[str | None],
    blocked: list[bool],
    total_flops: int,
    min_share: float,
) -> list[int]:
    stats: dict[int, list[int]] = {}  # group → [flops, params, nodes]
    for i, g in enumerate(group):
        if g >= 0:
            s = stats.setdefault(g, [0, 0, 0])
            s[0] += gi.flops(i)
            s[1] += gi.params(i)
            s[2] += 1
    if not stats:
        return []
    ranked = sorted(stats, key=lambda g: (-stats[g][0], -stats[g][2], g))
    kept: list[int] = []
    threshold = min_share * total_flops
    largest = stats[ranked[0]][0]
    for rank, g in enumerate(ranked):
        flops, params, count = stats[g]
        big_enough = flops >= threshold or flops >= SIBLING_SHARE * largest
        if params > 0 and (rank == 0 or big_enough) and (flops > 0 or total_flops == 0):
            kept.append(g)
    kept_set = set(kept)
    for i, g in enumerate(group):
        if g >= 0 and g not in kept_set:
            flops, params, count = stats[g]
            if blocked[i]:
                reason[i] = (
                    "cycle avoidance: joining the partition of its producers would make a path "
                    "leave the partition and come back"
                )
            elif params == 0:
                reason[i] = f"too small a partition: {count} node(s) without any layer with weights"
            else:
                reason[i] = (
                    f"too small a partition: {count} node(s), {flops:,} FLOPs "
                    f"(< {min_share:.0%} of the model and < {SIBLING_SHARE:.0%} of the largest "
                    "partition; not worth a device round trip)"
                )
            group[i] = -1
    return kept


def contraction_is_acyclic(gi: GraphIndex, group: list[int], kept: set[int]) -> bool:
    """Whether contracting each kept group to one vertex leaves the graph acyclic (Kahn's
    algorithm on the quotient graph, linear in nodes + edges)."""
    n = len(gi.nodes)
    vid = [(n + group[i]) if group[i] in kept else i for i in range(n)]
    indeg: dict[int, int] = {}
    edges: dict[int, set[int]] = {}
    for i in range(n):
        indeg.setdefault(vid[i], 0)
    for i in range(n):
        for s in gi.succs[i]:
            a, b = vid[i], vid[s]
            if a == b:
                continue
            targets = edges.setdefault(a, set())
            if b not in targets:
                targets.add(b)
                indeg[b] += 1
    ready = [v for v, d in indeg.items() if d == 0]
    seen = 0
    while ready:
        v = ready.pop()
        seen += 1
        for w in edges.get(v, ()):
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(w)
    return seen == len(indeg)


def _spec(gi: GraphIndex, tensor: str) -> TensorSpec:
    shape = gi.shape(tensor) or []
    return TensorSpec(tensor, list(shape), gi.dtype(tensor) or "float32")


def _make_partition(gi: GraphIndex, index: int, ids: list[int]) -> Partition:
    members = set(ids)
    inputs: dict[str, None] = {}  # ordered sets
    start: dict[str, None] = {}
    outputs: dict[str, None] = {}
    end: dict[str, None] = {}
    for i in ids:
        for t in gi.inputs[i]:
            if not t:
                continue
            p = gi.producer.get(t)
            if p is not None and p in members:
                continue
            if p is None and gi.is_constant(t):
                continue  # an initializer: goes into the partition's model
            inputs[t] = None
            start[gi.names[i]] = None
        for t in gi.nodes[i].output:
            if not t:
                continue
            if t in gi.output_set or any(c not in members for c in gi.consumers.get(t, ())):
                outputs[t] = None
                end[gi.names[i]] = None
    return Partition(
        index=index,
        nodes=[gi.names[i] for i in ids],
        start_nodes=list(start),
        end_nodes=list(end),
        inputs=[_spec(gi, t) for t in inputs],
        outputs=[_spec(gi, t) for t in outputs],
        flops=sum(gi.flops(i) for i in ids),
        params=sum(gi.params(i) for i in ids),
    )
