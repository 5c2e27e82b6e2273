"""Helpers shared by the compile backends: names, device layouts and boundary tensors."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import numpy as np
import onnx

from ..errors import CompileError
from ..graph.subgraph import value_infos
from ..partition.types import Partition

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_]+")


def sanitize(name: str) -> str:
    """A name HailoRT accepts in a vstream name: letters, digits and underscores."""
    cleaned = _NAME_CHARS.sub("_", name).strip("_")
    return cleaned or "t"


def net_name(model: onnx.ModelProto, partition: Partition) -> str:
    """The network name of a partition (the DFC ``net_name`` and the vstream prefix)."""
    base = sanitize(model.graph.name or "model").lower()
    return f"{base}_p{partition.index}"


def vstream_names(net: str, tensors: Sequence[str]) -> list[str]:
    """``<net>/<tensor>`` per tensor, sanitised and made unique."""
    names: list[str] = []
    seen: set[str] = set()
    for t in tensors:
        base = f"{net}/{sanitize(t)}"
        name, i = base, 1
        while name in seen:
            i += 1
            name = f"{base}_{i}"
        seen.add(name)
        names.append(name)
    return names


def device_layout(shape: Sequence[int], per_frame: bool = True) -> tuple[list[int], str, str]:
    """(device_shape, device_order, host_order) of a host tensor of ``shape``.

    4-D host tensors are NCHW and cross to the device as NHWC; 2-D ones are NC on both sides;
    3-D ones keep their layout (NHW). With ``per_frame`` the device shape describes one frame
    (leading dimension 1, as a HEF's vstreams do); the runtime sends N frames as N of them.
    """
    dims = [int(d) for d in shape]
    if per_frame and dims:
        dims[0] = 1
    if len(dims) == 4:
        n, c, h, w = dims
        return [n, h, w, c], "NHWC", "NCHW"
    if len(dims) == 2:
        return dims, "NC", "NC"
    if len(dims) == 3:
        return dims, "NHW", "NHW"
    raise CompileError(
        f"boundary tensor of rank {len(dims)} (shape {dims}) cannot cross to the device; "
        "only 2-D, 3-D and 4-D tensors can"
    )


def check_partition(partition: Partition) -> None:
    """Raise CompileError for a partition with nothing to put on the device."""
    if not partition.nodes:
        raise CompileError(f"partition {partition.index} is empty: nothing to put on the device")
    if not partition.inputs or not partition.outputs:
        raise CompileError(
            f"partition {partition.index} has no boundary "
            f"{'inputs' if not partition.inputs else 'outputs'}: nothing to put on the device"
        )


def iter_boundary_values(
    model: onnx.ModelProto,
    tensors: Sequence[str],
    calibration: Sequence[dict[str, np.ndarray]],
) -> Iterator[dict[str, np.ndarray]]:
    """The float values of ``tensors`` for each calibration feed, one sample at a time.

    Tensors that are model inputs are taken from the feeds; the others are added as extra
    graph outputs of a copy of ``model`` and computed with onnxruntime.
    """
    import onnxruntime as ort

    graph_inputs = {i.name for i in model.graph.input}
    computed = [t for t in dict.fromkeys(tensors) if t not in graph_inputs]
    sess = None
    if computed:
        infos = value_infos(model)
        m = onnx.ModelProto()
        m.CopyFrom(model)
        del m.graph.output[:]
        for t in computed:
            if t not in infos:
                raise CompileError(f"tensor {t!r} has no type in the model: run shape inference")
            m.graph.output.append(infos[t])
        try:
            sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise CompileError(f"cannot run the float model to compute boundaries: {exc}") from exc
    for i, feed in enumerate(calibration):
        row: dict[str, np.ndarray] = {}
        for t in tensors:
            if t in graph_inputs:
                if t not in feed:
                    raise CompileError(f"calibration sample {i} lacks model input {t!r}")
                row[t] = np.asarray(feed[t])
        if sess is not None:
            needed = {x.name for x in sess.get_inputs()}
            try:
                outs = sess.run(computed, {k: v for k, v in feed.items() if k in needed})
            except Exception as exc:
                raise CompileError(
                    f"running the float model on calibration sample {i} failed: {exc}"
                ) from exc
            row.update(zip(computed, outs))
        yield row


class AccuracyAccumulator:
    """Cosine similarity, SNR and max abs error accumulated over chunks of a tensor."""

    def __init__(self) -> None:
        self.dot = 0.0
        self.ref2 = 0.0
        self.app2 = 0.0
        self.err2 = 0.0
        self.max_err = 0.0

    def add(self, reference: np.ndarray, approx: np.ndarray) -> None:
        """Add one chunk (e.g. one sample) of ``approx`` against ``reference``."""
        ref = np.asarray(reference, dtype=np.float64).ravel()
        app = np.asarray(approx, dtype=np.float64).ravel()
        err = ref - app
        self.dot += float(ref @ app)
        self.ref2 += float(ref @ ref)
        self.app2 += float(app @ app)
        self.err2 += float(err @ err)
        if err.size:
            self.max_err = max(self.max_err, float(np.abs(err).max()))

    def result(self) -> dict[str, float]:
        """{"cosine", "snr_db", "max_abs_error"} over everything added."""
        denom = float(np.sqrt(self.ref2) * np.sqrt(self.app2))
        if denom > 0:
            cosine = self.dot / denom
        else:
            cosine = 1.0 if self.err2 == 0 else 0.0
        if self.err2 == 0:
            snr = float("inf")
        else:
            snr = float(10.0 * np.log10(self.ref2 / self.err2)) if self.ref2 > 0 else 0.0
        return {"cosine": float(cosine), "snr_db": snr, "max_abs_error": self.max_err}


def accuracy(reference: np.ndarray, approx: np.ndarray) -> dict[str, float]:
    """Cosine similarity, SNR in dB and max abs error of ``approx`` against ``reference``."""
    acc = AccuracyAccumulator()
    acc.add(reference, approx)
    return acc.result()
