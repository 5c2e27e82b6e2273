"""Stage 4: the ``ai.hailo::HailoOp`` model format (read Hailo's and ours; write portable / fork).

``read(model)`` lists the HailoOp nodes of a model; ``embed(model, compiled, flavour)`` writes
compiled partitions as HailoOp nodes; ``is_hailo_model``, ``strip_fallback`` and
``fallback_model`` help the runtime. The exact format: docs/hailoop-format.md.
"""

from .reader import HailoOpNode, is_hailo_model, is_hailo_op, payload_sha256, read
from .types import CompiledPartition, StreamSpec
from .writer import embed, fallback_model, save, strip_fallback, to_fork

__all__ = [
    "CompiledPartition",
    "HailoOpNode",
    "StreamSpec",
    "embed",
    "fallback_model",
    "is_hailo_model",
    "is_hailo_op",
    "payload_sha256",
    "read",
    "save",
    "strip_fallback",
    "to_fork",
]
