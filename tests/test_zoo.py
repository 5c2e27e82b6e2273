"""Built-in example models: validity, structure, determinism, and the YOLO decode semantics."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from hailo_ort import zoo
from hailo_ort.errors import ModelError
from hailo_ort.graph import load_model, prepare


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", sorted(zoo.EXAMPLES))
def test_examples_are_valid_small_and_run(name):
    model = zoo.get_example(name)
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version <= 10
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert model.ByteSize() < 4_000_000
    names = [n.name for n in model.graph.node]
    assert all(names) and len(set(names)) == len(names)
    session = _session(model)
    inp = session.get_inputs()[0]
    assert all(isinstance(d, int) for d in inp.shape)
    x = np.random.default_rng(0).random(inp.shape, dtype=np.float32)
    outputs = session.run(None, {inp.name: x})
    assert all(np.isfinite(o).all() for o in outputs)
    prepared = prepare(f"example:{name}")  # no flags needed
    assert prepared.total_flops > 1e6


def test_examples_are_deterministic():
    for name, build in zoo.EXAMPLES.items():
        assert build().SerializeToString() == build().SerializeToString(), name
    assert zoo.synthetic(300).SerializeToString() == zoo.synthetic(300).SerializeToString()


def test_get_example_errors():
    with pytest.raises(ModelError, match="unknown example 'resnet50'; valid examples: "):
        zoo.get_example("resnet50")
    with pytest.raises(ModelError, match="synthetic:N"):
        zoo.get_example("synthetic:abc")
    assert len(zoo.get_example("synthetic:200").graph.node) == pytest.approx(200, abs=6)


def test_yolov8n_head_names_and_io():
    model = zoo.yolov8n()
    names = {n.name: n for n in model.graph.node}
    for i in range(3):
        for head, channels in (("cv2", 64), ("cv3", 80)):
            assert f"/model.22/{head}.{i}/{head}.{i}.0/conv/Conv" in names
            assert f"/model.22/{head}.{i}/{head}.{i}.1/conv/Conv" in names
            last = names[f"/model.22/{head}.{i}/{head}.{i}.2/Conv"]
            assert last.op_type == "Conv"
            w = next(t for t in model.graph.initializer if t.name == last.input[1])
            assert w.dims[0] == channels
    for name in ("/model.22/Concat", "/model.22/Concat_1", "/model.22/Concat_2"):
        assert names[name].op_type == "Concat"
    dfl = names["/model.22/dfl/conv/Conv"]
    dfl_w = next(t for t in model.graph.initializer if t.name == dfl.input[1])
    np.testing.assert_array_equal(numpy_helper.to_array(dfl_w).ravel(), np.arange(16))
    ops = {n.op_type for n in model.graph.node}
    assert {"Split", "MaxPool", "Resize", "Sigmoid", "Mul", "Shape", "Range", "Expand"} <= ops
    assert [i.name for i in model.graph.input] == ["images"]
    out = model.graph.output[0]
    assert out.name == "output0"
    assert [d.dim_value for d in out.type.tensor_type.shape.dim] == [1, 84, 20 * 20 + 100 + 25]


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_yolov8n_tail_decodes_like_ultralytics():
    """Recompute output0 from the six head convs with the YOLOv8 decode written in numpy."""
    model = zoo.yolov8n()
    heads = [f"/model.22/{h}.{i}/{h}.{i}.2/Conv" for i in range(3) for h in ("cv2", "cv3")]
    by_name = {n.name: n for n in model.graph.node}
    head_outputs = [by_name[h].output[0] for h in heads]
    for t in head_outputs:
        model.graph.output.append(helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
    x = np.random.default_rng(3).random((1, 3, 160, 160), dtype=np.float32)
    output0, *raw = _session(model).run(None, {"images": x})

    boxes, scores, anchors, strides = [], [], [], []
    for i, stride in enumerate((8, 16, 32)):
        box, cls = raw[2 * i], raw[2 * i + 1]
        _, _, h, w = box.shape
        boxes.append(box.reshape(64, h * w))
        scores.append(cls.reshape(80, h * w))
        ys, xs = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
        anchors.append(np.stack([xs.ravel(), ys.ravel()]))
        strides.append(np.full(h * w, stride, np.float32))
    box = np.concatenate(boxes, axis=1).reshape(4, 16, -1)
    dist = (_softmax(box, axis=1) * np.arange(16).reshape(1, 16, 1)).sum(axis=1)  # [4, N]
    anchor = np.concatenate(anchors, axis=1)
    x1y1, x2y2 = anchor - dist[:2], anchor + dist[2:]
    xywh = np.concatenate([(x1y1 + x2y2) / 2, x2y2 - x1y1]) * np.concatenate(strides)
    cls = 1 / (1 + np.exp(-np.concatenate(scores, axis=1)))
    expected = np.concatenate([xywh, cls])[None]
    np.testing.assert_allclose(output0, expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_classifiers_normalise_input_with_constants(name):
    model = zoo.get_example(name)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    first, second = model.graph.node[0], model.graph.node[1]
    assert first.op_type == "Sub" and first.input[0] == model.graph.input[0].name
    assert second.op_type == "Div" and second.input[0] == first.output[0]
    np.testing.assert_allclose(inits[first.input[1]].ravel(), [0.485, 0.456, 0.406])
    np.testing.assert_allclose(inits[second.input[1]].ravel(), [0.229, 0.224, 0.225])
    assert model.graph.node[-1].op_type == "Softmax"
    assert model.graph.node[-2].op_type == "Gemm"
    probs = _session(model).run(None, {"input": np.ones((1, 3, 112, 112), np.float32)})[0]
    assert probs.shape == (1, 1000)
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-5)


def test_classifier_structure():
    resnet = zoo.resnet18()
    ops = [n.op_type for n in resnet.graph.node]
    assert ops.count("Add") == 8 and "BatchNormalization" in ops and "MaxPool" in ops
    assert "GlobalAveragePool" in ops and "Flatten" in ops
    mobilenet = zoo.mobilenet_v2()
    inits = {t.name: t for t in mobilenet.graph.initializer}
    depthwise = [
        n
        for n in mobilenet.graph.node
        if n.op_type == "Conv"
        and any(a.name == "group" and a.i > 1 for a in n.attribute)
        and inits[n.input[1]].dims[1] == 1
    ]
    assert len(depthwise) >= 7
    clips = [n for n in mobilenet.graph.node if n.op_type == "Clip"]
    assert clips and all(float(numpy_helper.to_array(inits[c.input[2]])) == 6.0 for c in clips)
    assert sum(n.op_type == "Add" for n in mobilenet.graph.node) >= 3


@pytest.mark.parametrize("count", [50, 1000, 5000])
def test_synthetic_size_and_validity(count):
    model = zoo.synthetic(count)
    assert abs(len(model.graph.node) - count) <= 6
    onnx.checker.check_model(model)
    ops = {n.op_type for n in model.graph.node}
    assert {"Conv", "Relu", "Add"} <= ops
    if count >= 1000:
        assert {"TopK", "CumSum", "Sin"} <= ops
        assert model.ByteSize() < 200 * count
    prepared = prepare(model)
    assert len(prepared.model.graph.node) == len(model.graph.node)


def test_synthetic_runs_in_onnxruntime():
    model = zoo.synthetic(600)
    x = np.random.default_rng(0).random((1, 4, 16, 16), dtype=np.float32)
    (y,) = _session(model).run(None, {"input": x})
    assert y.shape == (1, 4, 1, 1) and np.isfinite(y).all()


def test_examples_load_through_load_model():
    assert load_model("example:yolov8n").graph.input[0].name == "images"
    with pytest.raises(ModelError, match="valid examples"):
        load_model("example:nope")
