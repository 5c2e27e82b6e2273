"""The ``hailo-ort`` command line. Each subcommand lives in ``hailo_ort/cli/commands/<name>.py``
and defines ``register(subparsers)``, which adds its parser and sets ``func`` (args → exit code).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import HailoOrtError


def build_parser() -> argparse.ArgumentParser:
    """The ``hailo-ort`` argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="hailo-ort",
        description="Run ONNX models on Hailo accelerators through ONNX Runtime.",
    )
    parser.add_argument("--version", action="version", version=f"hailo-ort {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hailo-ort``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HailoOrtError as exc:
        print(f"hailo-ort {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a file the command reads or writes that no layer below reported
        print(f"hailo-ort {args.command}: error: {_describe_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hailo-ort: interrupted", file=sys.stderr)
        return 130


def _describe_os_error(exc: OSError) -> str:
    """One line naming the file and the OS reason, e.g. ``out.onnx: Permission denied``."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return reason
    names = str(exc.filename)
    if exc.filename2 is not None:
        names += f" -> {exc.filename2}"
    return f"{names}: {reason}"


if __name__ == "__main__":
    sys.exit(main())
