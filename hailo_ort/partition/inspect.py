"""``hailo_ort.inspect``: prepare a model, partition it for an arch, and report the result."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..archs import get_arch
from ..errors import ModelError
from ..graph.prepared import PreparedModel
from .graphindex import GraphIndex
from .partitioner import DEFAULT_MIN_PARTITION_SHARE, partition_model
from .support import load_support_table
from .types import CpuNode, Normalization, Partition

#: list CPU nodes one by one up to this many; beyond, group them by reason
_LIST_LIMIT = 40
#: show details of this many partitions in the text summary
_PARTITION_LIMIT = 12


@dataclass
class InspectResult:
    """What ``inspect`` found: the device partitions, the CPU nodes with reasons, normalisation."""

    arch: str
    family: str
    prepared: PreparedModel
    partitions: list[Partition]
    cpu_nodes: list[CpuNode]
    normalization: list[Normalization]
    placement: dict[str, int | None] = field(repr=False, default_factory=dict)
    model_label: str = "model.onnx"
    support_tables: list[str] = field(default_factory=list)
    #: the partitioner's index over the prepared graph (reused by the HTML report)
    graph_index: GraphIndex | None = field(repr=False, default=None)

    @property
    def total_flops(self) -> int:
        """FLOPs of the whole prepared model."""
        return self.prepared.total_flops

    @property
    def device_flops(self) -> int:
        """FLOPs that run on the device (all partitions)."""
        return sum(p.flops for p in self.partitions)

    @property
    def device_flops_share(self) -> float:
        """Share (0..1) of the model's FLOPs that run on the device."""
        if self.total_flops <= 0:
            return 0.0
        return min(1.0, self.device_flops / self.total_flops)

    @property
    def model_file(self) -> str:
        """The file name the DFC commands read (a built-in example must be saved there first)."""
        if self.model_label.startswith("example:"):
            return f"{self.model_label.split(':', 1)[1]}.onnx"
        return self.model_label

    def parser_command(self, partition: Partition) -> str:
        """A ``hailo parser onnx`` command line for one partition (see :meth:`parser_notes`)."""
        parts = ["hailo", "parser", "onnx", self.model_file, "--hw-arch", self.arch]
        parts += ["--start-node-names", *partition.start_nodes]
        parts += ["--end-node-names", *partition.end_nodes]
        shapes = [f"{t.name}=[{','.join(map(str, t.shape))}]" for t in partition.inputs]
        if shapes:
            parts += ["--tensor-shapes", *shapes]
        return " ".join(shlex.quote(p) for p in parts)

    def translate_call(self, partition: Partition) -> str:
        """The same as :meth:`parser_command` as a DFC Python call (``ClientRunner``)."""
        shapes = {t.name: t.shape for t in partition.inputs}
        return (
            f"runner.translate_onnx_model({self.model_file!r}, 'net{partition.index}', "
            f"start_node_names={partition.start_nodes!r}, end_node_names={partition.end_nodes!r}, "
            f"net_input_shapes={shapes!r})"
        )

    def parser_notes(self, partition: Partition | None = None) -> list[str]:
        """What the user must know before pasting the DFC commands (of one partition, or all).

        A built-in example exists only in memory; a start/end node that had no name, or shared
        its name, in the user's file has a name here that the file does not have.
        """
        notes: list[str] = []
        if self.model_label.startswith("example:"):
            name = self.model_label.split(":", 1)[1]
            notes.append(
                f"{self.model_label} is built in memory: save it as {self.model_file} first, e.g. "
                f'python -c "import onnx, hailo_ort.zoo as z; '
                f"onnx.save(z.get_example('{name}'), '{self.model_file}')\""
            )
        renamed = self.prepared.renamed_nodes
        shared = {v for v in renamed.values() if v}
        partitions = self.partitions if partition is None else [partition]
        named = dict.fromkeys(n for p in partitions for n in (*p.start_nodes, *p.end_nodes))
        problems: list[str] = []
        for node in named:
            if node in renamed:
                was = renamed[node]
                problems.append(f"{node} (no name)" if not was else f"{node} (named {was!r})")
            elif node in shared:
                problems.append(f"{node} (name shared by several nodes)")
        if problems:
            notes.append(
                "these start/end nodes have no unique name in your file, and the DFC parser finds "
                "nodes by name: "
                + ", ".join(problems)
                + "; re-export the model with unique node names, or let `hailo-ort compile` run "
                "the DFC (it parses the prepared model, which has the names shown)"
            )
        return notes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (the ``--json`` output)."""
        return {
            "arch": self.arch,
            "family": self.family,
            "model": self.model_label,
            "nodes": len(self.placement),
            "total_flops": self.total_flops,
            "device_flops": self.device_flops,
            "device_flops_share": self.device_flops_share,
            "partitions": [
                {
                    **p.to_dict(),
                    "parser_command": self.parser_command(p),
                    "translate_call": self.translate_call(p),
                    "parser_notes": self.parser_notes(p),
                }
                for p in self.partitions
            ],
            "cpu_nodes": [c.to_dict() for c in self.cpu_nodes],
            "normalization": [
                {
                    "input": nm.input,
                    "mean": nm.mean,
                    "std": nm.std,
                    "nodes": nm.nodes,
                    "model_script": nm.model_script(),
                }
                for nm in self.normalization
            ],
            "input_shapes": {k: list(v) for k, v in self.prepared.input_shapes.items()},
            "support_tables": list(self.support_tables),
        }

    def to_text(self) -> str:
        """A readable terminal summary."""
        lines: list[str] = []
        total = len(self.placement)
        on_device = sum(len(p.nodes) for p in self.partitions)
        lines.append(f"{self.model_label} → {self.arch} (family {self.family})")
        lines.append(
            f"nodes: {total} total, {on_device} on the device in {len(self.partitions)} "
            f"partition(s), {len(self.cpu_nodes)} on the CPU"
        )
        lines.append(
            f"FLOPs: {_human(self.total_flops)} total, {_human(self.device_flops)} on the device "
            f"({self.device_flops_share:.1%})"
        )
        lines.append("")
        if self.partitions:
            lines.append("Device partitions")
            header = f"  {'#':>2}  {'nodes':>6}  {'FLOPs':>9}  {'params':>9}  inputs → outputs"
            lines.append(header)
            for p in self.partitions[:_PARTITION_LIMIT]:
                ins = ", ".join(f"{t.name}{t.shape}" for t in p.inputs)
                outs = (
                    ", ".join(f"{t.name}{t.shape}" for t in p.outputs)
                    if len(p.outputs) <= 3
                    else f"{len(p.outputs)} tensors"
                )
                lines.append(
                    f"  {p.index:>2}  {len(p.nodes):>6}  {_human(p.flops):>9}  "
                    f"{_human(p.params):>9}  {ins} → {outs}"
                )
                lines.append(f"      start: {', '.join(p.start_nodes)}")
                lines.append(f"      end:   {', '.join(p.end_nodes)}")
            if len(self.partitions) > _PARTITION_LIMIT:
                lines.append(
                    f"  … {len(self.partitions) - _PARTITION_LIMIT} more partitions (see --json)"
                )
        else:
            lines.append("No device partition: everything stays on the CPU.")
        if self.normalization:
            lines.append("")
            lines.append("Input normalisation on the CPU (candidate for the DFC model script):")
            for nm in self.normalization:
                lines.append(f"  {nm.input}: {nm.model_script()}  (nodes: {', '.join(nm.nodes)})")
        if self.cpu_nodes:
            lines.append("")
            lines.append(f"CPU nodes ({len(self.cpu_nodes)})")
            if len(self.cpu_nodes) <= _LIST_LIMIT:
                width = min(48, max(len(c.name) for c in self.cpu_nodes))
                for c in self.cpu_nodes:
                    lines.append(f"  {c.name:<{width}}  {c.op_type:<12}  {c.reason}")
            else:
                for (category, op), names, example in _group_cpu_nodes(self.cpu_nodes):
                    shown = ", ".join(names[:3]) + (
                        f", … (+{len(names) - 3})" if len(names) > 3 else ""
                    )
                    lines.append(f"  {len(names):>5} × {op:<12} {category}: {shown}")
                    lines.append(f"          e.g. {example}")
        if self.partitions:
            lines.append("")
            lines.append("DFC parser (one command per partition):")
            for p in self.partitions[:_PARTITION_LIMIT]:
                lines.append(f"  {self.parser_command(p)}")
            if len(self.partitions) > _PARTITION_LIMIT:
                lines.append(
                    f"  … {len(self.partitions) - _PARTITION_LIMIT} more partitions (see --json)"
                )
            lines.extend(f"  note: {note}" for note in self.parser_notes())
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        """A self-contained HTML report with the graph coloured by placement."""
        from .report_html import render_html

        return render_html(self)


def _group_cpu_nodes(cpu_nodes: list[CpuNode]) -> list[tuple[tuple[str, str], list[str], str]]:
    groups: dict[tuple[str, str], list[CpuNode]] = {}
    for c in cpu_nodes:
        category = c.reason.split(":", 1)[0]
        groups.setdefault((category, c.op_type), []).append(c)
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    return [(key, [c.name for c in nodes], nodes[0].reason) for key, nodes in ordered]


def _human(value: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return str(value)


def _refuse_compiled(model: Any) -> None:
    """A model that already has HailoOp nodes was compiled: partitioning it again is a mistake."""
    from ..hailoop.reader import is_hailo_op

    names = [n.name or n.op_type for n in model.graph.node if is_hailo_op(n)]
    if names:
        raise ModelError(
            f"the model is already compiled: it has {len(names)} ai.hailo::HailoOp node(s) "
            f"({', '.join(names[:3])}); `hailo-ort hailoop show` lists them, and `hailo-ort "
            "hailoop fallback` gives back the float model (or start from the original .onnx)"
        )


def inspect(
    model: Any,
    arch: str = "hailo8",
    input_shapes: Mapping[str, Sequence[int]] | Sequence[str] | None = None,
    ops: str | os.PathLike[str] | dict[str, Any] | None = None,
    *,
    min_partition_share: float = DEFAULT_MIN_PARTITION_SHARE,
) -> InspectResult:
    """Prepare ``model`` and find what runs on a Hailo ``arch`` and what stays on the CPU.

    ``model``: a path, bytes, an ``onnx.ModelProto``, ``"example:NAME"`` or a PreparedModel.
    ``input_shapes``: ``{name: [1, 3, H, W]}`` or ``["name=1,3,H,W", ...]`` for dynamic inputs.
    ``ops``: a JSON support-table file (or dict) merged over the built-in table of the arch.
    """
    target = get_arch(arch)
    table = load_support_table(target.name, ops)
    if isinstance(model, PreparedModel):
        prepared = model
    else:
        from .. import graph

        prepared = graph.prepare(model, input_shapes)  # prepare() checks input_shapes
    _refuse_compiled(prepared.model)
    plan = partition_model(prepared, table, min_partition_share=min_partition_share)
    return InspectResult(
        arch=target.name,
        family=target.family,
        prepared=prepared,
        partitions=plan.partitions,
        cpu_nodes=plan.cpu_nodes,
        normalization=plan.normalization,
        placement=plan.placement,
        model_label=_label(model),
        support_tables=table.files,
        graph_index=plan.index,
    )


def _label(model: Any) -> str:
    if isinstance(model, (str, os.PathLike)):
        text = os.fspath(model)
        return text
    return "model.onnx"
