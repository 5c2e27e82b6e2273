"""``hailo-ort inspect``: what of a model runs on a Hailo device, and why the rest stays on the CPU."""

from __future__ import annotations

import argparse
import json
import sys

from ...archs import ARCHS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``inspect`` subcommand."""
    p = subparsers.add_parser(
        "inspect",
        help="partition a model for a Hailo arch and report what runs where",
        description=(
            "Prepare MODEL, find the device partition(s) for ARCH and list the CPU nodes with "
            "the reason each stays on the CPU. MODEL is an .onnx file or example:NAME."
        ),
    )
    p.add_argument(
        "model", metavar="MODEL", help="ONNX file, or example:NAME for a built-in example"
    )
    p.add_argument("--arch", required=True, metavar="ARCH", help=f"target arch: {', '.join(ARCHS)}")
    p.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME=1,3,H,W",
        help="fix the shape of a (dynamic) input; repeat for several inputs",
    )
    p.add_argument("--ops", metavar="FILE", help="JSON support table merged over the built-in one")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``hailo-ort inspect``; returns the exit code."""
    from ...archs import get_arch
    from ...fileio import check_writable, write_text_atomic
    from ...partition.inspect import inspect

    get_arch(args.arch)  # unknown arch: fail before loading the model
    if args.html:
        check_writable(args.html)
    result = inspect(
        args.model, arch=args.arch, input_shapes=args.input_shape or None, ops=args.ops
    )
    if args.html:
        write_text_atomic(args.html, result.to_html())
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(result.to_text())
        if args.html:
            sys.stdout.write(f"\nHTML report written to {args.html}\n")
    return 0
