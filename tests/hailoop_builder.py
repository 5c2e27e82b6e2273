"""TEMPORARY test helper: builds HailoOp models by hand, and a stand-in HailoOp reader.

Until ``hailo_ort.hailoop.read`` / ``embed`` land (another helper writes them), the runtime tests
build their models here: one ``ai.hailo::HailoOp`` node per device part, with the fork's seven
attributes, ``hailo_ort_meta`` (JSON of the StreamSpecs) and ``hailo_ort_emulation`` (the
emulation model bytes), and a float fallback body as a model-local FunctionProto overload.
``read`` parses only what this builder writes; ``conftest.py`` installs it as
``hailo_ort.hailoop.read`` only when the real reader is absent. Delete both once the real
reader and writer exist (build test models with ``hailo_ort.hailoop.embed`` instead).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

from hailo_ort.hailoop.types import CompiledPartition, StreamSpec
from hailo_ort.partition.types import Partition, TensorSpec
from hailo_ort.quant import quant_from_range

OPSET = 17
IR_VERSION = 10


def _spec(vstream: str, tensor: str, shape: list[int], lo: float, hi: float) -> StreamSpec:
    if len(shape) == 4:
        n, c, h, w = shape
        device_shape, order, host = [n, h, w, c], "NHWC", "NCHW"
    else:
        device_shape, order, host = list(shape), "NC", "NC"
    return StreamSpec(
        vstream=vstream,
        tensor=tensor,
        shape=list(shape),
        dtype="float32",
        device_shape=device_shape,
        device_order=order,
        device_dtype="uint8",
        quant=quant_from_range(lo, hi),
        host_order=host,
    )


def _shape(vi: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value for d in vi.type.tensor_type.shape.dim]


def emulation_model(
    device_part: onnx.ModelProto, inputs: list[StreamSpec], outputs: list[StreamSpec]
) -> bytes:
    """uint8 device tensors in, uint8 device tensors out: dequantize, float body, quantize."""
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = list(device_part.graph.initializer)
    g_in, g_out = [], []
    for spec, vi in zip(inputs, device_part.graph.input):
        s, z = f"{spec.vstream}_s", f"{spec.vstream}_z"
        inits += [
            numpy_helper.from_array(np.array(spec.quant.scale, np.float32), s),
            numpy_helper.from_array(np.array(int(spec.quant.zp), np.uint8), z),
        ]
        deq = f"{spec.vstream}_f"
        nodes.append(helper.make_node("DequantizeLinear", [spec.vstream, s, z], [deq]))
        if spec.device_order == "NHWC":
            nodes.append(helper.make_node("Transpose", [deq], [vi.name], perm=[0, 3, 1, 2]))
        else:
            nodes.append(helper.make_node("Identity", [deq], [vi.name]))
        g_in.append(
            helper.make_tensor_value_info(spec.vstream, TensorProto.UINT8, spec.device_shape)
        )
    nodes.extend(device_part.graph.node)
    for spec, vi in zip(outputs, device_part.graph.output):
        s, z = f"{spec.vstream}_s", f"{spec.vstream}_z"
        inits += [
            numpy_helper.from_array(np.array(spec.quant.scale, np.float32), s),
            numpy_helper.from_array(np.array(int(spec.quant.zp), np.uint8), z),
        ]
        moved = vi.name
        if spec.device_order == "NHWC":
            moved = f"{spec.vstream}_nhwc"
            nodes.append(helper.make_node("Transpose", [vi.name], [moved], perm=[0, 2, 3, 1]))
        nodes.append(helper.make_node("QuantizeLinear", [moved, s, z], [spec.vstream]))
        g_out.append(
            helper.make_tensor_value_info(spec.vstream, TensorProto.UINT8, spec.device_shape)
        )
    graph = helper.make_graph(nodes, "emulation", g_in, g_out, initializer=inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )
    onnx.checker.check_model(model)
    return model.SerializeToString()


def fallback_function(device_part: onnx.ModelProto, overload: str) -> onnx.FunctionProto:
    """The float body as a FunctionProto overload; weights become Constant nodes."""
    consts = [
        helper.make_node("Constant", [], [init.name], value=init)
        for init in device_part.graph.initializer
    ]
    return helper.make_function(
        "ai.hailo",
        "HailoOp",
        [vi.name for vi in device_part.graph.input],
        [vi.name for vi in device_part.graph.output],
        consts + list(device_part.graph.node),
        opset_imports=[helper.make_opsetid("", OPSET)],
        overload=overload,
    )


@dataclass
class HailoPart:
    node: onnx.NodeProto
    function: onnx.FunctionProto | None
    compiled: CompiledPartition


def hailo_part(
    device_part: onnx.ModelProto,
    outer_inputs: list[str],
    outer_outputs: list[str],
    calib: dict[str, np.ndarray],
    name: str = "hailo0",
    with_fallback: bool = True,
    with_emulation: bool = True,
    hef: bytes | None = None,
) -> HailoPart:
    """One HailoOp node (and its fallback function) running ``device_part``.

    Quantization ranges come from running the float ``device_part`` on ``calib``.
    """
    sess = onnxruntime.InferenceSession(
        device_part.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    float_out = sess.run(None, calib)
    net = name
    ins = [
        _spec(
            f"{net}/input_layer{i + 1}",
            outer,
            _shape(vi),
            float(calib[vi.name].min()),
            float(calib[vi.name].max()),
        )
        for i, (outer, vi) in enumerate(zip(outer_inputs, device_part.graph.input))
    ]
    outs = [
        _spec(f"{net}/output_layer{j + 1}", outer, _shape(vi), float(y.min()), float(y.max()))
        for j, (outer, vi, y) in enumerate(zip(outer_outputs, device_part.graph.output, float_out))
    ]
    emulation = emulation_model(device_part, ins, outs) if with_emulation and hef is None else None
    backend = "emulate" if with_emulation and hef is None else "dfc"
    partition = Partition(
        index=0,
        nodes=[n.name for n in device_part.graph.node],
        start_nodes=[],
        end_nodes=[],
        inputs=[TensorSpec(s.tensor, s.shape, s.dtype) for s in ins],
        outputs=[TensorSpec(s.tensor, s.shape, s.dtype) for s in outs],
    )
    payload = emulation if backend == "emulate" else hef
    # The metadata as docs/hailoop-format.md specifies it (format 1).
    meta = {
        "format": 1,
        "arch": "hailo8l",
        "backend": backend,
        "partition": partition.to_dict(),
        "inputs": [s.to_dict() for s in ins],
        "outputs": [s.to_dict() for s in outs],
        "payload_sha256": hashlib.sha256(payload or b"").hexdigest(),
    }
    attrs = {
        "hef": hef or b"",
        "sorted_input_names": [s.vstream for s in ins],
        "sorted_output_names": [s.vstream for s in outs],
        "input_format_order": [11 if len(s.shape) == 4 else 0 for s in ins],
        "output_format_order": [11 if len(s.shape) == 4 else 0 for s in outs],
        "input_quantized": [0] * len(ins),
        "output_quantized": [0] * len(outs),
        "hailo_ort_meta": json.dumps(meta),
    }
    if emulation is not None:
        attrs["hailo_ort_emulation"] = emulation
    overload = name if with_fallback else ""
    node = helper.make_node(
        "HailoOp", outer_inputs, outer_outputs, name=name, domain="ai.hailo", **attrs
    )
    if overload:
        node.overload = overload
    compiled = CompiledPartition(
        partition=partition,
        arch="hailo8l",
        backend=backend,
        inputs=ins,
        outputs=outs,
        hef=hef,
        emulation=emulation,
    )
    return HailoPart(
        node, fallback_function(device_part, overload) if with_fallback else None, compiled
    )


def make_model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    parts: list[HailoPart],
    initializers: list[onnx.TensorProto] | None = None,
) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "hailo_test", inputs, outputs, initializer=initializers or [])
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.hailo", 1)],
        ir_version=IR_VERSION,
        producer_name="hailo-ort-tests",
    )
    model.functions.extend(p.function for p in parts if p.function is not None)
    return model


# ---- the temporary reader -----------------------------------------------------------------


@dataclass
class ShimHailoOpNode:
    node_name: str
    compiled: CompiledPartition
    has_fallback: bool


def read(model: onnx.ModelProto) -> list[ShimHailoOpNode]:
    """Parse the HailoOp nodes this builder writes (stand-in for ``hailo_ort.hailoop.read``)."""
    funcs = {(f.domain, f.name, f.overload) for f in model.functions}
    found = []
    for node in model.graph.node:
        if node.op_type != "HailoOp" or node.domain != "ai.hailo":
            continue
        attrs = {a.name: a for a in node.attribute}
        meta = json.loads(attrs["hailo_ort_meta"].s.decode()) if "hailo_ort_meta" in attrs else None
        if meta is None:
            raise onnx.checker.ValidationError(f"{node.name}: not written by the test builder")
        ins = [StreamSpec.from_dict(d) for d in meta["inputs"]]
        outs = [StreamSpec.from_dict(d) for d in meta["outputs"]]
        emulation = attrs["hailo_ort_emulation"].s if "hailo_ort_emulation" in attrs else None
        hef = attrs["hef"].s or None
        p = meta["partition"]
        partition = Partition(
            p["index"], p["nodes"], p.get("start_nodes", []), p.get("end_nodes", []), [], []
        )
        compiled = CompiledPartition(
            partition, meta["arch"], meta["backend"], ins, outs, hef=hef, emulation=emulation
        )
        found.append(
            ShimHailoOpNode(
                node.name,
                compiled,
                ("ai.hailo", "HailoOp", node.overload) in funcs and bool(node.overload),
            )
        )
    return found
