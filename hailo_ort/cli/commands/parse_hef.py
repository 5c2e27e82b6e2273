"""``hailo-ort parse-hef FILE [--json]``: describe a HEF, or the HEFs embedded in an ONNX model.

The text output follows ``hailortcli parse-hef`` (architecture, network groups, vstream infos)
and adds quantization, net-flow ops and warnings. For an ONNX model, every
``ai.hailo::HailoOp`` node is listed with the HEF in its ``hef`` attribute.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any, Optional

from ...errors import HefError, ModelError
from ...hef import HEF_MAGIC, Hef, HefWarning, NetworkGroupInfo, VStreamInfo, read


def register(subparsers: Any) -> None:
    """Add the ``parse-hef`` subcommand."""
    p = subparsers.add_parser(
        "parse-hef",
        help="describe a HEF file, or the HEFs embedded in an ONNX model's HailoOp nodes",
        description=(
            "Print what a HEF contains (target arch, network groups, input/output vstreams "
            "with shapes, formats and quantization), like `hailortcli parse-hef`, without "
            "HailoRT. Given an .onnx model, list every ai.hailo::HailoOp node and its HEF."
        ),
    )
    p.add_argument("file", help="a .hef file, or an .onnx model with ai.hailo::HailoOp nodes")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def _read_quietly(data: bytes | str | Path) -> Hef:
    """Read a HEF; its warnings are shown by this command, not by the warnings module."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HefWarning)
        return read(data)


def _is_hef(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head == HEF_MAGIC.to_bytes(4, "big")


def hailo_op_hefs(model_path: Path) -> list[tuple[str, Optional[bytes]]]:
    """(node name, HEF bytes or None) for each ``ai.hailo::HailoOp`` node, graph order.

    Nodes in subgraphs (If/Loop bodies) are included. An empty or missing ``hef`` attribute
    (e.g. an emulated partition) gives None.
    """
    import onnx

    from ...hailoop import format as fmt
    from ...hailoop.reader import hailo_node_name, is_hailo_op

    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except FileNotFoundError:
        raise ModelError(f"model file not found: {model_path}") from None
    except Exception as exc:
        raise ModelError(f"cannot read ONNX model {model_path}: {exc}") from None

    found: list[tuple[str, Optional[bytes]]] = []

    def visit(graph: Any) -> None:
        for index, node in enumerate(graph.node):
            if is_hailo_op(node):
                hef = next((a.s for a in node.attribute if a.name == fmt.ATTR_HEF), b"")
                found.append((hailo_node_name(node, index), hef or None))
            for attr in node.attribute:
                if attr.HasField("g"):
                    visit(attr.g)
                for sub in attr.graphs:
                    visit(sub)

    visit(model.graph)
    return found


def _fmt(v: float) -> str:
    return f"{v:.8g}"


def _stream_lines(kind: str, vs: VStreamInfo) -> list[str]:
    label = "Input " if kind == "Input" else "Output"
    lines = [f"        {label} {vs.name} {vs.format_type}, {vs.host_format_order}{vs.shape_str()}"]
    if vs.is_nms:
        return lines
    q = vs.quant
    text = (
        f"            quant: zp {_fmt(q.zp)}, scale {_fmt(q.scale)}, "
        f"limvals [{_fmt(q.limvals_min)}, {_fmt(q.limvals_max)}]"
    )
    if q.per_feature:
        text += f", per-feature scales ({len(q.scales)})"
    lines.append(text + f"; device order {vs.format_order}")
    if vs.original_names:
        lines.append(f"            original names: {', '.join(vs.original_names)}")
    return lines


def _network_group_lines(ng: NetworkGroupInfo) -> list[str]:
    contexts = (
        f"Multi Context - Number of contexts: {ng.contexts}"
        if ng.is_multi_context
        else "Single Context"
    )
    lines = [f"Network group name: {ng.name}, {contexts}", "    VStream infos:"]
    for vs in ng.inputs:
        lines += _stream_lines("Input", vs)
    for vs in ng.outputs:
        lines += _stream_lines("Output", vs)
    for op in ng.ops:
        if op.nms is not None:
            n = op.nms
            lines.append(
                f"    NMS op {op.name} → {op.output_name}: meta-arch {n.meta_arch}, "
                f"classes {n.classes}, score threshold {_fmt(n.score_threshold)}, "
                f"IoU threshold {_fmt(n.iou_threshold)}, "
                f"max proposals per class {n.max_proposals_per_class}; "
                f"inputs: {', '.join(op.input_streams) or '-'}"
            )
        elif op.kind == "logits":
            lines.append(f"    Logits op {op.name} ({op.logits_type}) → {op.output_name}")
    return lines


def hef_text(hef: Hef) -> str:
    """The human-readable description of ``hef`` (``hailortcli parse-hef`` style)."""
    checksum = hef.header.checksum_kind.upper()
    checksum += " verified" if hef.checksum_verified else " not verified"
    lines = [
        f"Architecture HEF was compiled for: {hef.hw_arch_name}",
        f"HEF version: {hef.version}, SDK: {hef.sdk_version or 'unknown'}, checksum: {checksum}",
        f"Extensions: {', '.join(hef.extensions) or '-'}",
    ]
    for ng in hef.network_groups:
        lines += _network_group_lines(ng)
    lines += [f"Warning: {w}" for w in hef.warnings]
    return "\n".join(lines)


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def run(args: argparse.Namespace) -> int:
    """Run ``hailo-ort parse-hef``; returns the exit code."""
    path = Path(args.file)
    if not path.exists():
        raise HefError(f"file not found: {path}")
    if path.is_dir():
        raise HefError(f"{path} is a directory, not a HEF or ONNX file")

    if path.suffix.lower() == ".onnx" and not _is_hef(path):
        entries = []
        for node, data in hailo_op_hefs(path):
            if data is None:
                entries.append((node, None))
                continue
            try:
                entries.append((node, _read_quietly(data)))
            except HefError as exc:
                raise HefError(f"HailoOp node {node!r}: {exc}") from None
        if args.json:
            print(
                json.dumps(
                    {
                        "hailo_ops": [
                            {"node": n, "hef": h.to_dict() if h is not None else None}
                            for n, h in entries
                        ]
                    },
                    indent=2,
                )
            )
            return 0
        if not entries:
            print(f"{path}: no ai.hailo::HailoOp node")
            return 0
        for i, (node, hef) in enumerate(entries):
            if i:
                print()
            if hef is None:
                print(f"HailoOp node {node}: no HEF (emulated)")
            else:
                print(f"HailoOp node {node}: HEF of {len(hef.data)} bytes")
                print(_indent(hef_text(hef)))
        return 0

    hef = _read_quietly(path)
    if args.json:
        print(json.dumps(hef.to_dict(), indent=2))
    else:
        print(hef_text(hef))
    return 0
