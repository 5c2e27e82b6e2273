"""``hailo-ort compile``: compile a model's supported parts for a Hailo device."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from typing import Any

from ...archs import ARCHS


def register(subparsers: Any) -> None:
    """Add the ``compile`` subcommand."""
    p = subparsers.add_parser(
        "compile",
        help="compile the device partitions (Hailo DFC or emulation) into MODEL.hailo.onnx",
        description=(
            "Partition MODEL for ARCH, compile each device partition with the Hailo Dataflow "
            "Compiler (or emulate its 8-bit quantization when no DFC is available) and write "
            "an ONNX model with ai.hailo::HailoOp nodes."
        ),
    )
    p.add_argument("model", metavar="MODEL", help="the ONNX model (a path, or example:NAME)")
    p.add_argument("--arch", required=True, help=f"target: {', '.join(ARCHS)}")
    p.add_argument(
        "--calib",
        metavar="DIR|FILE.npy|FILE.npz|random",
        help="calibration data: a folder of images, an .npy (single input), an .npz keyed by "
        "input name, or 'random' (smoke tests only)",
    )
    p.add_argument(
        "--calib-limit",
        type=int,
        default=1024,
        metavar="N",
        help="use at most N calibration samples (default 1024; 0 = all)",
    )
    p.add_argument(
        "--image-scale",
        type=float,
        metavar="S",
        help="multiply calibration images' 0..255 pixel values by S (1 for a model that takes "
        "0..255, 0.00392157 for 0..1; default: from the model's input normalisation)",
    )
    p.add_argument(
        "--input-shape",
        action="append",
        metavar="NAME=D0,D1,...",
        help="fix a dynamic input shape (repeatable)",
    )
    p.add_argument("--model-script", metavar="FILE", help="DFC model script (.alls) to add")
    p.add_argument(
        "--optimization-level", type=int, default=2, metavar="N", help="DFC optimisation level 0-4"
    )
    p.add_argument("--backend", choices=["auto", "dfc", "emulate"], default="auto")
    p.add_argument("--flavour", choices=["portable", "fork"], default="portable")
    p.add_argument("--dfc-python", metavar="PATH", help="Python of the DFC's environment")
    p.add_argument("--ops", metavar="FILE", help="a support table overriding the built-in one")
    p.add_argument("--no-cache", action="store_true", help="do not use the compile cache")
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="output path (default MODEL.hailo.onnx; ./NAME.hailo.onnx for example:NAME)",
    )
    p.set_defaults(func=run)


def _show_warning(
    message: Any, category: Any, filename: Any, lineno: Any, *_: Any, **__: Any
) -> None:
    from ...compile import AccuracyWarning

    if issubclass(category, AccuracyWarning):
        return  # the summary (stdout) carries it as a WARNING line
    print(f"hailo-ort compile: warning: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run ``hailo-ort compile``; returns the exit code."""
    from ...compile import compile as compile_model

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("hailo-ort compile: %(message)s"))
    logger = logging.getLogger("hailo_ort")
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    if args.output:
        from ...fileio import check_writable

        check_writable(args.output)  # before minutes of compiling, not after
    input_shapes = None
    if args.input_shape:
        from ...graph import parse_input_shapes

        input_shapes = parse_input_shapes(args.input_shape)
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        result = compile_model(
            args.model,
            args.arch,
            calibration=args.calib,
            input_shapes=input_shapes,
            model_script=args.model_script,
            optimization_level=args.optimization_level,
            backend=args.backend,
            flavour=args.flavour,
            output=args.output,
            ops=args.ops,
            cache=not args.no_cache,
            dfc_python=args.dfc_python,
            progress=not args.no_progress,
            calibration_limit=None if args.calib_limit == 0 else args.calib_limit,
            image_scale=args.image_scale,
        )
    finally:
        warnings.showwarning = previous
        logger.removeHandler(handler)
    print(result.summary)
    return 0
