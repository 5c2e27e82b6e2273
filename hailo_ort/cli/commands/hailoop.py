"""``hailo-ort hailoop``: inspect and convert models with ``ai.hailo::HailoOp`` nodes.

- ``hailo-ort hailoop show MODEL [--json]``: each HailoOp node, its flavour, payload and streams
- ``hailo-ort hailoop to-fork MODEL OUT``: write the fork flavour (for Hailo's ORT fork)
- ``hailo-ort hailoop strip MODEL OUT``: drop the CPU fallback bodies (device-only file)
- ``hailo-ort hailoop fallback MODEL OUT``: the plain CPU model (bodies inlined, no HailoOp)
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ...errors import HailoOpFormatError


def register(subparsers: Any) -> None:
    """Add the ``hailoop`` subcommand and its actions."""
    p = subparsers.add_parser(
        "hailoop",
        help="inspect or convert models with ai.hailo::HailoOp nodes",
        description="Inspect or convert ONNX models with ai.hailo::HailoOp nodes "
        "(see docs/hailoop-format.md).",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="list the HailoOp nodes of a model")
    show.add_argument("model")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(func=run_show)
    for name, help_text in (
        ("to-fork", "write the fork flavour (Hailo's onnxruntime fork: IR ≤ 8, opset ≤ 16)"),
        ("strip", "write the model without its CPU fallback bodies"),
        ("fallback", "write the plain CPU model: fallback bodies inlined, no HailoOp nodes"),
    ):
        q = sub.add_parser(name, help=help_text)
        q.add_argument("model")
        q.add_argument("output")
        q.set_defaults(func=run_convert)


def _describe(node: Any) -> dict[str, Any]:
    cp = node.compiled
    payload = cp.emulation if cp.backend == "emulate" else cp.hef
    return {
        "node": node.node_name,
        "flavour": node.flavour,
        "written_by_hailo_ort": node.written_by_us,
        "has_fallback": node.has_fallback,
        "backend": cp.backend,
        "arch": cp.arch,
        "payload_bytes": len(payload or b""),
        "hef_parsed": node.hef is not None,
        "toolchain": cp.toolchain,
        "partition_nodes": len(cp.partition.nodes),
        "inputs": [s.to_dict() for s in cp.inputs],
        "outputs": [s.to_dict() for s in cp.outputs],
    }


def _stream_line(direction: str, s: dict[str, Any]) -> str:
    q = s["quant"]
    return (
        f"    {direction} {s['vstream']} <-> {s['tensor']} {s['dtype']}{s['shape']} {s['host_order']}"
        f" | device {s['device_dtype']}{s['device_shape']} {s['device_order']}"
        f" | zp {q['zp']:g} scale {q['scale']:g}"
    )


def run_show(args: argparse.Namespace) -> int:
    """``hailo-ort hailoop show``: describe each HailoOp node (text or JSON)."""
    from ...hailoop import read

    described = [_describe(n) for n in read(args.model)]
    if args.json:
        print(json.dumps({"model": args.model, "hailo_ops": described}, indent=2))
        return 0
    if not described:
        print(f"{args.model}: no ai.hailo::HailoOp node")
        return 0
    for d in described:
        origin = "hailo-ort" if d["written_by_hailo_ort"] else "other tool (e.g. Hailo DFC)"
        print(
            f"{d['node']}: {d['flavour']} flavour, written by {origin}, backend {d['backend']}, "
            f"arch {d['arch'] or '?'}, payload {d['payload_bytes']} B, "
            f"CPU fallback {'yes' if d['has_fallback'] else 'no'}"
        )
        for s in d["inputs"]:
            print(_stream_line("in ", s))
        for s in d["outputs"]:
            print(_stream_line("out", s))
    return 0


def run_convert(args: argparse.Namespace) -> int:
    """``hailo-ort hailoop to-fork|strip|fallback``: write the converted model."""
    from ...hailoop import fallback_model, is_hailo_model, save, strip_fallback, to_fork
    from ...hailoop._model import load_model

    model = load_model(args.model, copy=False)  # parsed once; the conversions work on copies
    if not is_hailo_model(model):
        raise HailoOpFormatError(f"{args.model}: no ai.hailo::HailoOp node")
    convert = {"to-fork": to_fork, "strip": strip_fallback, "fallback": fallback_model}
    save(convert[args.action](model), args.output)
    print(f"wrote {args.output}")
    return 0
