"""The emulation backend: predicts the effect of 8-bit quantization without the Hailo compiler.

A partition is cut out of the float model and quantized with onnxruntime's static QDQ
quantizer (8-bit activations, per-channel 8-bit weights), calibrated on the partition's
boundary inputs. It is wrapped so that it takes and returns quantized device tensors, laid out
as the device would (NHWC / NC, uint8), with Hailo's quantization rule at the boundary:
``q = round_half_even(clip(x, limvals) / scale + zp)``, ``x = (q - zp) * scale``.

This is not the Hailo compiler: it does not reproduce the DFC's optimisation algorithms,
16-bit layers or the hardware's exact arithmetic. It predicts the accuracy cost of 8-bit
quantization and lets the whole pipeline run without a device.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import CompileError
from ..graph.subgraph import extract_subgraph
from ..hailoop.types import CompiledPartition, StreamSpec
from ..partition.types import Partition
from ..quant import QuantInfo, quant_from_range
from ..transforms import from_device, to_device
from .common import (
    AccuracyAccumulator,
    check_partition,
    device_layout,
    iter_boundary_values,
    net_name,
    vstream_names,
)

EMULATION_NOTE = "emulation: predicts 8-bit quantization effects; not the Hailo compiler"

#: Version of the emulation algorithm; part of the compile cache key, so that results of an
#: older (possibly wrong) emulation are not served from the cache. Bump on any change to what
#: this module produces.
EMULATION_VERSION = 2

#: Samples the inner quantizer calibrates layer ranges on (the DFC's default calibset_size).
QUANTIZER_SAMPLES = 64

_DTYPES = {"uint8": TensorProto.UINT8, "uint16": TensorProto.UINT16}


def split_holdout(n: int) -> tuple[list[int], list[int], bool]:
    """(calibration indices, held-out indices, in_sample) for ``n`` samples.

    A fifth of the samples (at least one) is held out when there are 4 or more; with fewer,
    all samples are used for both and the accuracy is in-sample.
    """
    if n >= 4:
        k = max(1, n // 5)
        return list(range(n - k)), list(range(n - k, n)), False
    return list(range(n)), list(range(n)), True


class _Reader:
    """A CalibrationDataReader over precomputed feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._it = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def _fold_float(sub: onnx.ModelProto, folder: Path) -> onnx.ModelProto:
    """The float subgraph after onnxruntime's basic graph optimisations.

    Folds BatchNormalization into Conv, constants, and the like, as the Hailo DFC does before
    quantizing; quantizing an unfolded BatchNormalization's input separately loses far more
    precision than the device does. Basic optimisations keep to standard ONNX operators.
    """
    import onnxruntime as ort

    path = folder / "folded.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(path)
    try:
        ort.InferenceSession(sub.SerializeToString(), options, providers=["CPUExecutionProvider"])
        folded = onnx.load(str(path))
    except Exception as exc:
        raise CompileError(
            f"onnxruntime cannot load the partition's float subgraph: {exc}"
        ) from exc
    used = {n.domain for n in folded.graph.node} | {""}
    kept = [o for o in folded.opset_import if o.domain in used]
    del folded.opset_import[:]
    folded.opset_import.extend(kept)
    return folded


def _output_range_overrides(
    folded: onnx.ModelProto, output_ranges: dict[str, tuple[float, float]]
) -> dict[str, list[dict[str, np.float32]]]:
    """Quantizer range overrides for graph outputs that also feed a Relu or Clip.

    onnxruntime's quantizer copies a Relu/Clip output's range onto its input (the fused
    activation of a device layer) without checking whether that input is also a graph output;
    the output would then lose its negative values. Pinning such an output's range to its
    boundary range keeps the activation quantized and the output whole.
    """
    outputs = {o.name for o in folded.graph.output}
    fed = {
        n.input[0]
        for n in folded.graph.node
        if n.op_type in ("Relu", "Clip") and n.input and n.input[0] in outputs
    }
    return {
        t: [{"rmin": np.float32(output_ranges[t][0]), "rmax": np.float32(output_ranges[t][1])}]
        for t in sorted(fed)
        if t in output_ranges
    }


def _quantize_subgraph(
    sub: onnx.ModelProto,
    feeds: list[dict[str, np.ndarray]],
    output_ranges: dict[str, tuple[float, float]] | None = None,
) -> onnx.ModelProto:
    """The QDQ-quantized ``sub``, calibrated on ``feeds``; ``output_ranges`` are the float
    (min, max) of the graph outputs (see :func:`_output_range_overrides`)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(_Reader, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(prefix="hailo-ort-emu-") as tmp:
        out = Path(tmp) / "q.onnx"
        folded = _fold_float(sub, Path(tmp))
        overrides = _output_range_overrides(folded, output_ranges or {})
        # The quantizer logs advice on the root logger; it is not for our users.
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            quantize_static(
                folded,
                str(out),
                Reader(feeds),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                # (not CalibMaxIntermediateOutputs: onnxruntime 1.32 then loses samples'
                # ranges; memory is bounded by QUANTIZER_SAMPLES instead)
                extra_options={
                    "ActivationSymmetric": False,
                    "WeightSymmetric": True,
                    "TensorQuantOverrides": overrides,
                },
            )
        except Exception as exc:
            raise CompileError(f"8-bit quantization of the partition failed: {exc}") from exc
        finally:
            logging.disable(previous)
        return onnx.load(str(out))


def _const(name: str, value: float | Sequence[int], dtype: Any = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def dequantize_nodes(
    spec: StreamSpec, prefix: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """device values (vstream) → float tensor in the host layout (spec.tensor)."""
    q = spec.quant
    p = f"{prefix}/in/{spec.tensor}"
    inits = [_const(f"{p}/zp", q.zp), _const(f"{p}/scale", q.scale)]
    transpose = spec.device_order == "NHWC" and len(spec.device_shape) == 4
    mul_out = f"{p}/nhwc" if transpose else spec.tensor
    nodes = [
        helper.make_node(
            "Cast", [spec.vstream], [f"{p}/f"], to=TensorProto.FLOAT, name=f"{p}/cast"
        ),
        helper.make_node("Sub", [f"{p}/f", f"{p}/zp"], [f"{p}/centered"], name=f"{p}/sub"),
        helper.make_node("Mul", [f"{p}/centered", f"{p}/scale"], [mul_out], name=f"{p}/mul"),
    ]
    if transpose:
        nodes.append(
            helper.make_node(
                "Transpose", [mul_out], [spec.tensor], perm=[0, 3, 1, 2], name=f"{p}/t"
            )
        )
    return nodes, inits


def quantize_nodes(
    spec: StreamSpec, prefix: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """float tensor in the host layout (spec.tensor) → device values (vstream), Hailo's rule."""
    q = spec.quant
    qmax = float(np.iinfo(np.dtype(spec.device_dtype)).max)
    p = f"{prefix}/out/{spec.tensor}"
    inits = [
        _const(f"{p}/lmin", q.limvals_min),
        _const(f"{p}/lmax", q.limvals_max),
        _const(f"{p}/scale", q.scale),
        _const(f"{p}/zp", q.zp),
        _const(f"{p}/qmin", 0.0),
        _const(f"{p}/qmax", qmax),
    ]
    src = spec.tensor
    nodes: list[onnx.NodeProto] = []
    if spec.device_order == "NHWC" and len(spec.device_shape) == 4:
        nodes.append(
            helper.make_node("Transpose", [src], [f"{p}/nhwc"], perm=[0, 2, 3, 1], name=f"{p}/t")
        )
        src = f"{p}/nhwc"
    nodes += [
        helper.make_node("Clip", [src, f"{p}/lmin", f"{p}/lmax"], [f"{p}/clip"], name=f"{p}/clip"),
        helper.make_node("Div", [f"{p}/clip", f"{p}/scale"], [f"{p}/div"], name=f"{p}/div"),
        helper.make_node("Add", [f"{p}/div", f"{p}/zp"], [f"{p}/add"], name=f"{p}/add"),
        helper.make_node("Round", [f"{p}/add"], [f"{p}/round"], name=f"{p}/round"),
        helper.make_node(
            "Clip", [f"{p}/round", f"{p}/qmin", f"{p}/qmax"], [f"{p}/sat"], name=f"{p}/sat"
        ),
        helper.make_node(
            "Cast", [f"{p}/sat"], [spec.vstream], to=_DTYPES[spec.device_dtype], name=f"{p}/cast"
        ),
    ]
    return nodes, inits


def build_emulation_model(
    quantized: onnx.ModelProto,
    inputs: list[StreamSpec],
    outputs: list[StreamSpec],
    *,
    symbolic_batch: bool = False,
) -> onnx.ModelProto:
    """Wrap a (QDQ) model of the partition with Hailo's boundary quantization and layouts.

    With ``symbolic_batch`` the streams' leading dimension is symbolic (``"frames"``): the
    model takes any number of frames, as the device does.
    """
    prefix = "hailo_ort_emu"
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    for spec in inputs:
        n, i = dequantize_nodes(spec, prefix)
        nodes += n
        inits += i
    nodes += list(quantized.graph.node)
    for spec in outputs:
        n, i = quantize_nodes(spec, prefix)
        nodes += n
        inits += i

    def vi(spec: StreamSpec) -> onnx.ValueInfoProto:
        shape: list[int | str] = list(spec.device_shape)
        if symbolic_batch and shape:
            shape[0] = "frames"
        return helper.make_tensor_value_info(spec.vstream, _DTYPES[spec.device_dtype], shape)

    graph = helper.make_graph(
        nodes,
        f"{prefix}_{quantized.graph.name}",
        [vi(s) for s in inputs],
        [vi(s) for s in outputs],
        initializer=list(quantized.graph.initializer) + inits,
    )
    opsets = {o.domain: o.version for o in quantized.opset_import}
    opsets[""] = max(opsets.get("", 13), 13)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
        producer_name="hailo-ort-emulation",
    )
    model.ir_version = min(quantized.ir_version or 8, onnx.IR_VERSION) or 8
    model.functions.extend(quantized.functions)
    return model


def batch_dim(tensors: Sequence[Any]) -> int | None:
    """The leading dimension all of ``tensors`` share (the batch), or None when they differ."""
    leading = {int(t.shape[0]) for t in tensors if t.shape}
    return leading.pop() if len(leading) == 1 else None


def _stream_specs(
    partition_tensors: Sequence[Any],
    vstreams: Sequence[str],
    quants: Sequence[QuantInfo],
    per_frame: bool,
) -> list[StreamSpec]:
    specs = []
    for t, vs, q in zip(partition_tensors, vstreams, quants):
        if t.dtype != "float32":
            raise CompileError(
                f"boundary tensor {t.name!r} is {t.dtype}; only float32 tensors cross to the device"
            )
        if not t.shape or any(int(d) <= 0 for d in t.shape):
            raise CompileError(
                f"boundary tensor {t.name!r} has shape {list(t.shape)}; static positive "
                "dimensions are needed (fix the input shapes)"
            )
        dshape, dorder, horder = device_layout(t.shape, per_frame=per_frame)
        specs.append(
            StreamSpec(
                vstream=vs,
                tensor=t.name,
                shape=list(t.shape),
                dtype=t.dtype,
                device_shape=dshape,
                device_order=dorder,
                device_dtype="uint8",
                quant=q,
                host_order=horder,
            )
        )
    return specs


def run_emulation(
    emulation: bytes | onnx.ModelProto,
    inputs: list[StreamSpec],
    outputs: list[StreamSpec],
    feeds: Iterable[dict[str, np.ndarray]],
    *,
    per_frame: bool = False,
) -> Iterator[dict[str, np.ndarray]]:
    """Run an emulation model on float host tensors; yields float host tensors per sample.

    With ``per_frame`` each sample's frames (leading dimension) run one at a time, as the
    runtime sends them with batch size 1, and the results are concatenated.
    """
    import onnxruntime as ort

    data = emulation if isinstance(emulation, bytes) else emulation.SerializeToString()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = [s.vstream for s in outputs]
    for feed in feeds:
        dev = {
            s.vstream: to_device(
                np.asarray(feed[s.tensor], dtype=np.float32),
                s.quant,
                s.device_dtype,
                s.host_order,
                s.device_order,
            )
            for s in inputs
        }
        if per_frame:
            frames = next(iter(dev.values())).shape[0] if dev else 1
            runs = [
                sess.run(names, {k: v[f : f + 1] for k, v in dev.items()}) for f in range(frames)
            ]
            outs = [np.concatenate(parts, axis=0) for parts in zip(*runs)]
        else:
            outs = sess.run(names, dev)
        yield {
            s.tensor: from_device(o, s.quant, s.host_order, s.device_order).reshape(s.shape)
            for s, o in zip(outputs, outs)
        }


def compile_partition_emulated(
    model: onnx.ModelProto,
    partition: Partition,
    calibration: Sequence[dict[str, np.ndarray]],
    arch: str,
    *,
    progress: Any = None,
) -> CompiledPartition:
    """Compile ``partition`` of the prepared ``model`` with the emulation backend.

    ``calibration`` holds feeds of the full model's inputs. A fifth of them is held out to
    measure accuracy against float (cosine similarity, SNR, max abs error per output), reported
    in ``CompiledPartition.report``. The boundary tensors are computed one sample at a time:
    memory holds at most the quantizer's ``QUANTIZER_SAMPLES`` samples.

    When every boundary tensor has the same leading (batch) dimension, the device streams are
    per frame (``device_shape[0] == 1``), like a HEF's; at batch N > 1 the emulation model
    takes any number of frames, and a graph that hard-codes its batch size (so cannot run one
    frame at a time) is a CompileError.
    """
    check_partition(partition)
    if not calibration:
        raise CompileError("emulation needs calibration data (at least one sample)")
    in_names = [t.name for t in partition.inputs]
    out_names = [t.name for t in partition.outputs]
    boundary = list(dict.fromkeys(in_names + out_names))
    batch = batch_dim(list(partition.inputs) + list(partition.outputs))
    per_frame = batch is not None
    calib_idx, hold_idx, in_sample = split_holdout(len(calibration))
    n_calib = len(calib_idx)
    if progress is not None:
        progress.stage("boundary tensors")
    values = iter_boundary_values(model, boundary, calibration)

    # Pass 1 (the calibration samples): ranges over all; the first QUANTIZER_SAMPLES kept.
    lo = {t: np.inf for t in boundary}
    hi = {t: -np.inf for t in boundary}
    kept: list[dict[str, np.ndarray]] = []
    for i in range(n_calib):
        row = next(values)
        for t in boundary:
            a = row[t]
            if a.size:
                lo[t] = min(lo[t], float(np.min(a)))
                hi[t] = max(hi[t], float(np.max(a)))
        if i < QUANTIZER_SAMPLES:
            kept.append({t: row[t] for t in in_names})
        if in_sample:
            kept[-1] = row  # fewer than 4 samples: they are the held-out ones too

    net = net_name(model, partition)
    in_quants = [quant_from_range(lo[t], hi[t], "uint8") for t in in_names]
    out_quants = [quant_from_range(lo[t], hi[t], "uint8") for t in out_names]
    vnames = vstream_names(net, in_names + out_names)
    inputs = _stream_specs(partition.inputs, vnames[: len(in_names)], in_quants, per_frame)
    outputs = _stream_specs(partition.outputs, vnames[len(in_names) :], out_quants, per_frame)

    sub = extract_subgraph(model, partition.nodes, in_names, out_names, name=net)
    if progress is not None:
        progress.stage("quantize (8-bit emulation)")
    # The quantizer calibrates on what the device sees: inputs after boundary quantization.
    dequantized_inputs = [
        {
            s.tensor: from_device(
                to_device(
                    np.asarray(row[s.tensor], np.float32),
                    s.quant,
                    s.device_dtype,
                    s.host_order,
                    s.device_order,
                ),
                s.quant,
                s.host_order,
                s.device_order,
            )
            for s in inputs
        }
        for row in kept
    ]
    if not in_sample:
        kept.clear()  # only the dequantized copies are needed from here
    # Like the DFC (calibset_size 64 by default), the layer ranges use up to 64 samples.
    quantized = _quantize_subgraph(
        sub, dequantized_inputs, output_ranges={t: (lo[t], hi[t]) for t in out_names}
    )
    del dequantized_inputs
    # batch 1 keeps its static shape (the emulator then runs frames one at a time as before)
    symbolic = per_frame and batch is not None and batch > 1
    emu = build_emulation_model(quantized, inputs, outputs, symbolic_batch=symbolic)
    try:
        onnx.checker.check_model(emu)
    except onnx.checker.ValidationError as exc:
        raise CompileError(
            f"the emulation model of partition {partition.index} is invalid: {exc}"
        ) from exc
    payload = emu.SerializeToString()

    # Pass 2 (the held-out samples, the last ones): accuracy, one sample at a time.
    if progress is not None:
        progress.stage("accuracy check")
    held = kept if in_sample else (next(values) for _ in hold_idx)
    pending: list[dict[str, np.ndarray]] = []

    def references() -> Iterator[dict[str, np.ndarray]]:
        for row in held:
            pending.append(row)
            yield row

    accs = {t: AccuracyAccumulator() for t in out_names}
    try:
        for emulated in run_emulation(payload, inputs, outputs, references(), per_frame=per_frame):
            row = pending.pop()
            for t in out_names:
                accs[t].add(row[t], emulated[t])
    except CompileError:
        raise
    except Exception as exc:
        if per_frame and batch is not None and batch > 1:
            raise CompileError(
                f"partition {partition.index} cannot run one frame at a time: its graph "
                f"hard-codes the batch size {batch} ({exc}); compile it with batch 1 "
                "(--input-shape NAME=1,...) or export the model with a dynamic batch"
            ) from exc
        raise CompileError(
            f"the emulation model of partition {partition.index} failed to run: {exc}"
        ) from exc
    acc = {t: a.result() for t, a in accs.items()}

    import onnxruntime as ort

    from .. import __version__

    return CompiledPartition(
        partition=partition,
        arch=arch,
        backend="emulate",
        inputs=inputs,
        outputs=outputs,
        emulation=payload,
        toolchain={
            "tool": "hailo-ort emulation",
            "hailo_ort": __version__,
            "emulation_version": str(EMULATION_VERSION),
            "onnxruntime": ort.__version__,
            "note": EMULATION_NOTE,
        },
        report={
            "note": EMULATION_NOTE,
            "accuracy": acc,
            "calibration_samples": n_calib,
            "heldout_samples": len(hold_idx),
            "in_sample": in_sample,
        },
    )
