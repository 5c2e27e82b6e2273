"""Data types of a compiled device partition, as embedded in (and read from) a HailoOp node."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..partition.types import Partition
from ..quant import QuantInfo


@dataclass
class StreamSpec:
    """One boundary tensor of a device partition, on both sides of the host ↔ device transform.

    ``device_order`` is the layout of the buffers exchanged with the device API (the HailoRT
    host-side format): "NHWC" for 4-D tensors, "NC" for 2-D ones ("NHCW" where it is kept).
    ``device_shape`` includes the batch dimension, e.g. [1, H, W, C].
    """

    vstream: str
    tensor: str
    shape: list[int]
    dtype: str = "float32"
    device_shape: list[int] = field(default_factory=list)
    device_order: str = "NHWC"
    device_dtype: str = "uint8"
    quant: QuantInfo = field(default_factory=QuantInfo)
    host_order: str = "NCHW"  # "NCHW" for 4-D host tensors, "NC" for 2-D

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the form stored in HailoOp attributes)."""
        return {
            "vstream": self.vstream,
            "tensor": self.tensor,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "device_shape": list(self.device_shape),
            "device_order": self.device_order,
            "device_dtype": self.device_dtype,
            "host_order": self.host_order,
            "quant": self.quant.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StreamSpec:
        """The inverse of :meth:`to_dict`."""
        return cls(
            vstream=d["vstream"],
            tensor=d["tensor"],
            shape=[int(v) for v in d["shape"]],
            dtype=d.get("dtype", "float32"),
            device_shape=[int(v) for v in d.get("device_shape", [])],
            device_order=d.get("device_order", "NHWC"),
            device_dtype=d.get("device_dtype", "uint8"),
            host_order=d.get("host_order", "NCHW"),
            quant=QuantInfo.from_dict(d.get("quant", {})),
        )


@dataclass
class CompiledPartition:
    """A device partition after compilation: what ``embed`` writes and ``read`` returns.

    Exactly one of ``hef`` (backend "dfc", or a model read from Hailo's fork) and ``emulation``
    (backend "emulate": the emulation ONNX model, see docs/ARCHITECTURE.md) is set.
    """

    partition: Partition
    arch: str
    backend: str  # "dfc" | "emulate" | "fork" (read from a model we did not write)
    inputs: list[StreamSpec]
    outputs: list[StreamSpec]
    hef: bytes | None = None
    emulation: bytes | None = None
    toolchain: dict[str, str] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)  # e.g. emulation accuracy per output
