"""Stage 4: the ``ai.hailo::HailoOp`` model format (read Hailo's and ours; write portable / fork)."""

from .types import CompiledPartition, StreamSpec

__all__ = ["CompiledPartition", "StreamSpec"]
