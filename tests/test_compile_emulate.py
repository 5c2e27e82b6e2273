"""The emulation backend: boundary quantization by Hailo's rule, accuracy against float."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from compile_models import convnet_partition, image_feeds, small_convnet
from onnx import TensorProto, helper

from hailo_ort.compile.emulate import (
    EMULATION_NOTE,
    compile_partition_emulated,
    quantize_nodes,
    run_emulation,
    split_holdout,
)
from hailo_ort.errors import CompileError
from hailo_ort.hailoop.types import StreamSpec
from hailo_ort.partition.types import Partition, TensorSpec
from hailo_ort.quant import QuantInfo, dequantize, quant_from_range, quantize
from hailo_ort.transforms import from_device, to_device


def _run(model: onnx.ModelProto, feed: dict) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


def _float_outputs(model, tensor, feeds):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    vi = {v.name: v for v in m.graph.value_info}[tensor]
    del m.graph.output[:]
    m.graph.output.append(vi)
    return [_run(m, f)[0] for f in feeds]


@pytest.mark.parametrize(
    "quant",
    [
        quant_from_range(-1.3, 2.7),
        quant_from_range(0.0, 6.0),
        QuantInfo(zp=144.0, scale=0.016738918, limvals_min=-2.4104042, limvals_max=1.8580198),
        QuantInfo(zp=0.0, scale=0.18431373, limvals_min=0.0, limvals_max=47.0),
    ],
)
def test_boundary_quantize_matches_hailo_rule(quant: QuantInfo) -> None:
    spec = StreamSpec(
        vstream="net/y",
        tensor="y",
        shape=[1, 4, 5, 6],
        device_shape=[1, 5, 6, 4],
        device_order="NHWC",
        quant=quant,
    )
    nodes, inits = quantize_nodes(spec, "t")
    graph = helper.make_graph(
        nodes,
        "q",
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, spec.shape)],
        [helper.make_tensor_value_info("net/y", TensorProto.UINT8, spec.device_shape)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rng = np.random.default_rng(3)
    lo, hi = quant.limvals_min, quant.limvals_max
    x = rng.uniform(lo - 1.0, hi + 1.0, spec.shape).astype(np.float32)
    # Exact half steps (the rounding tie cases) and the limits themselves.
    k = rng.integers(0, 255, x.size // 2)
    half = ((k + 0.5 - quant.zp) * quant.scale).astype(np.float32)
    x.ravel()[: half.size] = half
    x.ravel()[-2:] = [lo, hi]
    got = _run(model, {"y": x})[0]
    want = to_device(x, quant, "uint8", "NCHW", "NHWC")
    np.testing.assert_array_equal(got, want)
    # and the tie cases really are ties in float32: some round down (to even), not all up
    assert (np.transpose(got, (0, 3, 1, 2)).ravel()[: half.size] == k).any()


def test_emulation_boundaries_use_quant_reference() -> None:
    """Inputs are dequantized and outputs quantized exactly as hailo_ort.quant does it."""
    model = small_convnet()
    feeds = image_feeds(12)
    cp = compile_partition_emulated(model, convnet_partition("from_input"), feeds, "hailo8l")
    (inp,), (out,) = cp.inputs, cp.outputs
    # the raw 0..255 image input is quantized losslessly (scale 1, zp 0)
    assert inp.quant.scale == pytest.approx(1.0) and inp.quant.zp == 0
    assert inp.device_shape == [1, 16, 16, 3] and inp.device_order == "NHWC"
    assert out.device_shape == [1, 10] and out.device_order == "NC"
    sess = ort.InferenceSession(cp.emulation, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == [inp.vstream]
    assert sess.get_inputs()[0].type == "tensor(uint8)"
    assert sess.get_outputs()[0].type == "tensor(uint8)"
    q_in = to_device(feeds[0]["x"], inp.quant, "uint8", "NCHW", "NHWC")
    assert np.array_equal(from_device(q_in, inp.quant, "NCHW", "NHWC"), feeds[0]["x"])
    (q_out,) = sess.run(None, {inp.vstream: q_in})
    assert q_out.dtype == np.uint8
    # the output stays within one quantization step of the float result, by the reference rule
    ref = _float_outputs(model, "logits", feeds[:1])[0]
    deq = dequantize(q_out, out.quant)
    assert np.abs(deq - ref).max() <= 4 * out.quant.scale
    assert quantize(ref, out.quant).dtype == np.uint8


def test_emulated_outputs_close_to_float_but_not_identical() -> None:
    model = small_convnet()
    feeds = image_feeds(30)
    part = convnet_partition("features")
    cp = compile_partition_emulated(model, part, feeds, "hailo8")
    assert cp.backend == "emulate" and cp.hef is None and cp.arch == "hailo8"
    assert cp.toolchain["note"] == EMULATION_NOTE
    assert "not the Hailo compiler" in cp.report["note"]
    acc = cp.report["accuracy"]["r2"]
    assert acc["cosine"] > 0.99
    assert acc["snr_db"] > 20
    assert acc["max_abs_error"] > 0  # quantization is emulated, not skipped
    assert cp.report["heldout_samples"] == 6 and cp.report["calibration_samples"] == 24
    # independently: run the emulation on held-out feeds and compare with float
    held = feeds[24:]
    xn = [{"xn": f["x"] / np.float32(255)} for f in held]
    emu = run_emulation(cp.emulation, cp.inputs, cp.outputs, xn)
    ref = _float_outputs(model, "r2", held)
    for e, r in zip(emu, ref):
        assert e["r2"].shape == r.shape
        cos = float((e["r2"].ravel() @ r.ravel()) / np.linalg.norm(e["r2"]) / np.linalg.norm(r))
        assert cos > 0.99
        assert not np.allclose(e["r2"], r, atol=1e-6)
    # the emulation is 8-bit inside: it carries QDQ nodes with int8 weights
    inner = onnx.load_from_string(cp.emulation)
    ops = {n.op_type for n in inner.graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert "Conv" in ops


def test_classifier_partition_2d_output_accuracy() -> None:
    cp = compile_partition_emulated(
        small_convnet(), convnet_partition("classifier"), image_feeds(20), "hailo8l"
    )
    assert cp.outputs[0].vstream == "small_convnet_p0/logits"
    assert cp.inputs[0].vstream == "small_convnet_p0/xn"
    assert cp.report["accuracy"]["logits"]["cosine"] > 0.99


def test_split_holdout() -> None:
    assert split_holdout(10) == (list(range(8)), [8, 9], False)
    assert split_holdout(3) == ([0, 1, 2], [0, 1, 2], True)


def test_empty_partition_is_an_error() -> None:
    empty = Partition(0, [], [], [], [], [])
    with pytest.raises(CompileError, match="empty"):
        compile_partition_emulated(small_convnet(), empty, image_feeds(2), "hailo8")


def test_no_calibration_is_an_error() -> None:
    with pytest.raises(CompileError, match="calibration"):
        compile_partition_emulated(small_convnet(), convnet_partition(), [], "hailo8")


def test_non_float_boundary_is_an_error() -> None:
    part = convnet_partition("classifier")
    part.inputs = [TensorSpec("xn", [1, 3, 16, 16], "int64")]
    with pytest.raises(CompileError, match="int64"):
        compile_partition_emulated(small_convnet(), part, image_feeds(4), "hailo8")


def test_real_model_pplcnet_folds_batchnorm_before_quantizing() -> None:
    """A real third-party classifier (PP-LCNet, 27 unfolded BatchNormalization nodes).

    Quantizing each BatchNormalization's input separately wrecks the result (held-out cosine
    about 0.1 here); folding it into the Conv first, as the DFC does, keeps it usable.
    """
    from conftest import third_party_model

    model = onnx.load(str(third_party_model("pplcnet")))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    del model.graph.value_info[:]
    for o in model.graph.output:
        o.type.tensor_type.shape.dim[0].dim_value = 1
    for i, n in enumerate(model.graph.node):
        n.name = n.name or f"{n.op_type}_{i}"
    model = onnx.shape_inference.infer_shapes(model)
    assert sum(n.op_type == "BatchNormalization" for n in model.graph.node) > 20
    body = model.graph.node[:-1]  # all but the final Softmax
    logits = body[-1].output[0]
    part = Partition(
        0,
        [n.name for n in body],
        [body[0].name],
        [body[-1].name],
        [TensorSpec("x", [1, 3, 224, 224], "float32")],
        [TensorSpec(logits, [1, 4], "float32")],
    )
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((1, 3, 224, 224)).astype(np.float32)} for _ in range(10)]
    cp = compile_partition_emulated(model, part, feeds, "hailo8l")
    inner = onnx.load_from_string(cp.emulation)
    assert not any(n.op_type == "BatchNormalization" for n in inner.graph.node)
    assert cp.report["accuracy"][logits]["cosine"] > 0.6
    assert cp.outputs[0].device_shape == [1, 4]


def test_boundary_tensors_are_not_all_held_in_memory(monkeypatch) -> None:
    # Before: every sample's boundary tensors (up to 1,024) stayed in memory at once (~10 GB
    # for a 640x640 YOLO). Now at most the quantizer's samples are kept.
    import weakref

    from hailo_ort.compile import emulate

    monkeypatch.setattr(emulate, "QUANTIZER_SAMPLES", 3)
    real = emulate.iter_boundary_values
    alive: list[weakref.ref] = []
    most = {"in": 0, "out": 0}

    def tracked(model, tensors, calibration):
        for row in real(model, tensors, calibration):
            refs = {t: weakref.ref(a) for t, a in row.items()}
            alive.append(refs)
            yield row
            del row
            for kind, t in (("in", "xn"), ("out", "r2")):
                live = sum(1 for r in alive if r[t]() is not None)
                most[kind] = max(most[kind], live)

    monkeypatch.setattr(emulate, "iter_boundary_values", tracked)
    cp = compile_partition_emulated(
        small_convnet(), convnet_partition("features"), image_feeds(40), "hailo8"
    )
    assert len(alive) == 40
    assert most["in"] <= 3 + 2  # the quantizer's samples, the current and the previous one
    assert most["out"] <= 2
    assert cp.report["accuracy"]["r2"]["cosine"] > 0.99
