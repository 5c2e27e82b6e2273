"""Data types shared by the partitioner and the stages after it (compile, embed, runtime)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TensorSpec:
    """A boundary tensor: name, static shape, numpy dtype name (e.g. "float32")."""

    name: str
    shape: list[int]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass
class Partition:
    """One device partition: a connected set of nodes that the DFC compiles into one HEF.

    ``nodes`` are node names in topological order (the prepared model names every node).
    ``start_nodes`` / ``end_nodes`` are what the DFC parser takes as start/end node names.
    ``inputs`` / ``outputs`` are the tensors that cross the partition boundary.
    """

    index: int
    nodes: list[str]
    start_nodes: list[str]
    end_nodes: list[str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    flops: int = 0
    params: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``inspect --json`` form)."""
        d = asdict(self)
        d["inputs"] = [t.to_dict() for t in self.inputs]
        d["outputs"] = [t.to_dict() for t in self.outputs]
        return d


@dataclass
class CpuNode:
    """A node left on the CPU, with the reason why."""

    name: str
    op_type: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"name": self.name, "op_type": self.op_type, "reason": self.reason}


@dataclass
class Normalization:
    """Leading input normalisation by constants: a candidate for the DFC ``normalization``."""

    input: str
    mean: list[float]
    std: list[float]
    nodes: list[str] = field(default_factory=list)

    def model_script(self) -> str:
        """The DFC model-script command, e.g. ``normalization([0], [255])``."""
        mean = ", ".join(f"{v:g}" for v in self.mean)
        std = ", ".join(f"{v:g}" for v in self.std)
        return f"normalization([{mean}], [{std}])"
