"""prepare() on real third-party ONNX models shipped in PyPI packages (see conftest.py)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import third_party_model

from hailo_ort.errors import InputShapeError
from hailo_ort.graph import load_model, prepare


def _run(model: onnx.ModelProto, feeds):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run(None, feeds)


def _assert_same_outputs(original, prepared_model, feeds):
    expected = _run(original, feeds)
    got = _run(prepared_model, feeds)
    assert len(expected) == len(got)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def test_pplcnet_dynamic_batch_needs_shapes():
    path = third_party_model("pplcnet")
    with pytest.raises(InputShapeError) as info:
        prepare(path)
    assert "input 'x' has dynamic shape ['DynamicDimension.0', 3, 224, 224]" in str(info.value)
    assert "--input-shape x=1,3,224,224" in str(info.value)

    prepared = prepare(path, {"x": [1, 3, 224, 224]})
    assert prepared.input_shapes == {"x": [1, 3, 224, 224]}
    onnx.checker.check_model(prepared.model)
    out = prepared.model.graph.output[0].name
    assert prepared.shapes[out] == [1, 4]
    # The Shape → Slice → Concat → Reshape head folds once the batch is fixed.
    assert "Shape" not in {n.op_type for n in prepared.model.graph.node}
    # PP-LCNet x1.0 at 224×224 is about 0.16 G multiply-adds.
    assert 0.25e9 < prepared.total_flops < 0.4e9
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    _assert_same_outputs(load_model(path), prepared.model, {"x": x})


def test_picodet_prepares_and_folds_constants():
    path = third_party_model("picodet")
    original = load_model(path)
    prepared = prepare(path)
    assert prepared.input_shapes == {"image": [1, 3, 800, 608]}
    names = [n.name for n in prepared.model.graph.node]
    assert all(names) and len(set(names)) == len(names)
    assert "Constant" not in {n.op_type for n in prepared.model.graph.node}
    assert len(prepared.folded) >= sum(n.op_type == "Constant" for n in original.graph.node)
    for out in prepared.model.graph.output:
        assert prepared.shapes[out.name] is not None
    onnx.checker.check_model(prepared.model)
    x = np.random.default_rng(0).random((1, 3, 800, 608), dtype=np.float32)
    _assert_same_outputs(original, prepared.model, {"image": x})


def test_silero_vad_control_flow_kept_intact():
    path = third_party_model("silero_vad")
    original = load_model(path)
    with pytest.raises(InputShapeError) as info:
        prepare(path)
    assert "input 'input'" in str(info.value) and "input 'state'" in str(info.value)
    # 8 kHz chunk: 256 samples + 32 context. (With more than 320 samples onnxruntime's own
    # static shape inference rejects the untaken 8 kHz branch, so 16 kHz chunks cannot be
    # fixed statically in this model.)
    shapes = {"input": [1, 288], "state": [2, 1, 128]}
    prepared = prepare(path, shapes)
    assert prepared.input_shapes == {**shapes, "sr": []}
    original_if = next(n for n in original.graph.node if n.op_type == "If")
    prepared_if = next(n for n in prepared.model.graph.node if n.op_type == "If")
    assert prepared_if.name == original_if.name
    assert [a.SerializeToString() for a in prepared_if.attribute] == [
        a.SerializeToString() for a in original_if.attribute
    ]
    onnx.checker.check_model(prepared.model)
    rng = np.random.default_rng(0)
    feeds = {
        "input": rng.standard_normal((1, 288)).astype(np.float32) * 0.1,
        "state": np.zeros((2, 1, 128), np.float32),
        "sr": np.array(8000, np.int64),
    }
    _assert_same_outputs(original, prepared.model, feeds)
