"""Exception types of hailo-ort.

Every error a user can cause (bad model, bad HEF, bad option, missing device or compiler)
is a :class:`HailoOrtError` whose message names the problem; the CLI prints it on one line.
"""

from __future__ import annotations


class HailoOrtError(Exception):
    """Base class of all hailo-ort errors."""


class ModelError(HailoOrtError, ValueError):
    """The ONNX model is missing, malformed, or cannot be prepared (e.g. dynamic shapes)."""


class InputShapeError(ModelError):
    """Input shapes are dynamic and not fixed, or a fixed shape names an unknown input."""


class ArchError(HailoOrtError, ValueError):
    """Unknown target architecture, or a HEF built for an architecture the device cannot run."""


class SupportTableError(HailoOrtError, ValueError):
    """A support table (built-in or given with --ops) is malformed."""


class HefError(HailoOrtError, ValueError):
    """A HEF file is malformed, truncated, or of an unknown version."""


class HailoOpFormatError(HailoOrtError, ValueError):
    """A HailoOp node is malformed, or a model cannot be written in the requested flavour."""


class CompileError(HailoOrtError, RuntimeError):
    """Compilation failed (DFC error, bad calibration data, empty partition...)."""


class CalibrationError(CompileError, ValueError):
    """Calibration data is missing or does not match the model inputs."""


class OutputError(HailoOrtError, OSError):
    """An output file cannot be written (folder in the way, no permission, disk full...)."""


class DeviceError(HailoOrtError, RuntimeError):
    """No usable device, or the device failed or timed out."""
