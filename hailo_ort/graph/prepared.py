"""The prepared model: what graph analysis (stage 1) hands to the partitioner (stage 2)."""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx


@dataclass
class PreparedModel:
    """A model ready to partition.

    ``model`` has static input shapes, inferred shapes in ``value_info``, constants folded and a
    unique non-empty name on every node. ``node_flops`` / ``node_params`` are per node name
    (FLOPs count a multiply-add as 2). ``folded`` lists names of original nodes replaced by
    constants. ``shapes`` / ``dtypes`` map every typed tensor to its static shape (None where
    unknown) and numpy dtype name. ``renamed_nodes`` maps the names given to nodes that were
    unnamed or shared a name in the user's file back to that name (``""`` if it had none).
    """

    model: onnx.ModelProto
    input_shapes: dict[str, list[int]]
    node_flops: dict[str, int] = field(default_factory=dict)
    node_params: dict[str, int] = field(default_factory=dict)
    folded: list[str] = field(default_factory=list)
    shapes: dict[str, list[int] | None] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)
    renamed_nodes: dict[str, str] = field(default_factory=dict)

    @property
    def total_flops(self) -> int:
        """FLOPs of the whole model (sum over nodes)."""
        return sum(self.node_flops.values())
