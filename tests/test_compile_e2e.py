"""End to end: compile (emulate) → InferenceSession on the emulator → compare with float.

Every session here uses ``fallback="error"``: a device failure raises instead of silently
running the float body on the CPU, and outputs must differ from float (8-bit) yet stay close.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from compile_models import small_convnet
from onnx import TensorProto, helper, numpy_helper

import hailo_ort
from hailo_ort.compile import AccuracyWarning
from hailo_ort.errors import CompileError
from hailo_ort.zoo import get_example, synthetic_images

EMULATOR = [("HailoExecutionProvider", {"device": "emulator", "fallback": "error"})]


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HAILO_ORT_CACHE_DIR", str(tmp_path / "cache"))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _float_run(model: onnx.ModelProto, feed: dict) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


def _compile(model: onnx.ModelProto, calibration, **kwargs) -> hailo_ort.compile.CompileResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few calibration samples
        return hailo_ort.compile(
            model, "hailo8", calibration=calibration, backend="emulate", cache=False,
            progress=False, **kwargs,
        )  # fmt: skip


def _output_feeds_relu_model() -> onnx.ModelProto:
    """Two branches; ``c3`` is a device output that also feeds a Relu (output ``o2``) inside the
    device partition, and goes on to the CPU (Transpose) and a second device partition."""
    rng = np.random.default_rng(0)

    def conv(name: str, x: str, cin: int, cout: int) -> tuple[onnx.NodeProto, list]:
        w = numpy_helper.from_array(
            (rng.standard_normal((cout, cin, 3, 3)) * 0.3).astype(np.float32), f"{name}_w"
        )
        b = numpy_helper.from_array(
            (rng.standard_normal(cout) * 0.1).astype(np.float32), f"{name}_b"
        )
        node = helper.make_node("Conv", [x, w.name, b.name], [name], name=name, pads=[1] * 4)
        return node, [w, b]

    nodes, inits = [], []
    for name, x, cin in [("c1", "a", 3), ("c2", "b", 3)]:
        n, i = conv(name, x, cin, 8)
        nodes.append(n)
        inits += i
    nodes += [
        helper.make_node("Add", ["c1", "c2"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["r"], name="relu"),
    ]
    n, i = conv("c3", "r", 8, 8)
    nodes.append(n)
    inits += i
    nodes += [
        helper.make_node("Relu", ["c3"], ["o2"], name="relu2"),
        helper.make_node("Transpose", ["c3"], ["t"], name="tr", perm=[0, 1, 3, 2]),
    ]
    n, i = conv("c4", "t", 8, 8)
    nodes.append(n)
    inits += i
    nodes.append(helper.make_node("Relu", ["c4"], ["r4"], name="relu4"))
    n, i = conv("c5", "r4", 8, 8)
    nodes.append(n)
    inits += i
    nodes.append(helper.make_node("Sigmoid", ["c5"], ["o1"], name="sig"))
    shape = [1, 3, 16, 16]
    graph = helper.make_graph(
        nodes,
        "mm",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, shape) for x in "ab"],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, 8, 16, 16]) for y in ("o1", "o2")],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_device_output_that_feeds_a_relu_keeps_its_negative_values() -> None:
    # Before the fix the quantizer copied relu2's [0, max] range onto c3 (a device output):
    # c3 lost its negative half (held-out cosine 0.44) and o1, computed from it, had cosine 0.73.
    model = _output_feeds_relu_model()
    rng = np.random.default_rng(1)
    calib = {x: rng.standard_normal((40, 1, 3, 16, 16)).astype(np.float32) for x in "ab"}
    result = _compile(model, calib)
    acc = {t: a for r in result.partitions for t, a in r.compiled.report["accuracy"].items()}
    assert acc["c3"]["cosine"] > 0.99
    assert "WARNING" not in result.summary
    session = hailo_ort.InferenceSession(result.model, providers=EMULATOR)
    assert len(session.device_nodes) == 2
    for seed in range(3):
        r = np.random.default_rng(100 + seed)
        feed = {x: r.standard_normal((1, 3, 16, 16)).astype(np.float32) for x in "ab"}
        got = dict(zip(["o1", "o2"], session.run(["o1", "o2"], feed)))
        want = dict(zip(["o1", "o2"], _float_run(model, feed)))
        for name in ("o1", "o2"):
            assert _cosine(got[name], want[name]) > 0.99, name
            assert not np.array_equal(got[name], want[name])  # quantized, not the float body
        assert np.abs(got["o1"] - want["o1"]).max() < 0.5


def _dynamic_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.value_info[:]
    for v in [*m.graph.input, *m.graph.output]:
        v.type.tensor_type.shape.dim[0].dim_param = "N"
    return m


@pytest.mark.parametrize("batch_size", [1, 2, 4])
def test_batch_4_model_runs_on_the_device_for_any_device_batch(batch_size: int) -> None:
    # Before the fix the device streams kept N=4 and the emulation model needed exactly 4
    # frames: batch_size 1 or 2 failed ("Got: 1 Expected: 4").
    model = _dynamic_batch(small_convnet())
    rng = np.random.default_rng(2)
    calib = rng.integers(0, 256, (20, 4, 3, 16, 16)).astype(np.float32)
    result = _compile(model, calib, input_shapes={"x": [4, 3, 16, 16]})
    (part,) = result.partitions
    assert [s.device_shape[0] for s in part.compiled.inputs + part.compiled.outputs] == [1, 1]
    providers = [("HailoExecutionProvider", {**EMULATOR[0][1], "batch_size": batch_size})]
    session = hailo_ort.InferenceSession(result.model, providers=providers)
    x = rng.integers(0, 256, (4, 3, 16, 16)).astype(np.float32)
    (got,) = session.run(None, {"x": x})
    (want,) = _float_run(model, {"x": x})
    assert got.shape == (4, 10)
    assert not np.array_equal(got, want)
    for frame in range(4):  # each frame is its own image, not mixed with the others
        assert _cosine(got[frame], want[frame]) > 0.999
        assert got[frame].argmax() == want[frame].argmax()


def test_graph_that_hard_codes_its_batch_is_a_compile_error() -> None:
    model = _dynamic_batch(small_convnet())
    # Flatten → Reshape to the constant shape [4, 16]: cannot run one frame at a time.
    flat = next(n for n in model.graph.node if n.op_type == "Flatten")
    flat.op_type = "Reshape"
    flat.input.append("flat_shape")
    model.graph.initializer.append(
        numpy_helper.from_array(np.array([4, 16], np.int64), "flat_shape")
    )
    rng = np.random.default_rng(3)
    calib = rng.integers(0, 256, (8, 4, 3, 16, 16)).astype(np.float32)
    with pytest.raises(CompileError, match="hard-codes the batch size 4"):
        _compile(model, calib, input_shapes={"x": [4, 3, 16, 16]})


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18", "yolov8n"])
def test_examples_on_the_emulator_close_to_float(name: str) -> None:
    model = get_example(name)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    result = _compile(model, synthetic_images(10, dims[1:], seed=1))
    session = hailo_ort.InferenceSession(result.model, providers=EMULATOR)
    assert session.device_nodes
    x = synthetic_images(1, dims[1:], seed=9)
    feed = {model.graph.input[0].name: x}
    got = session.run(None, feed)
    want = _float_run(model, feed)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        assert not np.array_equal(a, b)
        assert _cosine(a, b) > 0.99


def test_low_held_out_cosine_is_a_visible_warning() -> None:
    model = small_convnet()
    rng = np.random.default_rng(4)
    calib = rng.integers(0, 256, (20, 1, 3, 16, 16)).astype(np.float32)
    calib[0] *= 1e4  # one wild sample stretches every range: held-out values round to zero
    with pytest.warns(AccuracyWarning, match=r"cosine .* is below 0.9"):
        result = hailo_ort.compile(
            model, "hailo8", calibration=calib, backend="emulate", cache=False, progress=False
        )
    assert "WARNING: partition 0 output" in result.summary
    # a healthy compile says nothing of the kind
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        healthy = hailo_ort.compile(
            model, "hailo8", calibration=calib[1:], backend="emulate", cache=False, progress=False
        )
    assert "WARNING" not in healthy.summary
    assert not [w for w in caught if "below 0.9" in str(w.message)]


def test_emulation_version_is_part_of_the_cache_key(tmp_path, monkeypatch) -> None:
    from hailo_ort.compile import emulate

    model = small_convnet()
    calib = np.random.default_rng(5).integers(0, 256, (8, 1, 3, 16, 16)).astype(np.float32)

    def hits() -> list[bool]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = hailo_ort.compile(
                model, "hailo8", calibration=calib, backend="emulate", progress=False,
                cache_root=tmp_path,
            )  # fmt: skip
        return [r.cache_hit for r in result.partitions]

    assert hits() == [False]
    assert hits() == [True]
    monkeypatch.setattr(emulate, "EMULATION_VERSION", emulate.EMULATION_VERSION + 1)
    assert hits() == [False]  # an older emulation's result is not served


def test_session_compile_writes_nothing_beside_the_model(tmp_path) -> None:
    # Before: session(path, compile=...) wrote (and overwrote) path's .hailo.onnx beside it.
    model = small_convnet()
    path = tmp_path / "models" / "net.onnx"
    path.parent.mkdir()
    onnx.save(model, str(path))
    existing = path.with_name("net.hailo.onnx")
    existing.write_bytes(b"a DFC build")
    calib = np.random.default_rng(6).integers(0, 256, (8, 1, 3, 16, 16)).astype(np.float32)
    before = sorted(p.name for p in path.parent.iterdir())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sess = hailo_ort.session(path, compile="emulate", calibration=calib, fallback="error")
    assert sess.device_nodes
    assert existing.read_bytes() == b"a DFC build"
    assert sorted(p.name for p in path.parent.iterdir()) == before
    x = calib[0]
    (got,) = sess.run(None, {"x": x})
    (want,) = _float_run(model, {"x": x})
    assert _cosine(got, want) > 0.99 and not np.array_equal(got, want)
    # output= writes it where asked
    out = tmp_path / "sub.hailo.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hailo_ort.session(path, compile="emulate", calibration=calib, output=out)
    assert out.is_file() and existing.read_bytes() == b"a DFC build"


def test_dynamic_batch_model_still_takes_n_frames_after_compiling() -> None:
    # Before: compiling fixed batch 1 in the output model; 3 frames were refused.
    import threading

    model = _dynamic_batch(small_convnet())
    rng = np.random.default_rng(7)
    calib = rng.integers(0, 256, (10, 1, 3, 16, 16)).astype(np.float32)
    result = _compile(model, calib, input_shapes={"x": [1, 3, 16, 16]})
    assert "dynamic batch dim (N) is kept" in result.summary
    session = hailo_ort.InferenceSession(result.model, providers=EMULATOR)
    assert session.get_inputs()[0].shape == ["N", 3, 16, 16]
    assert session.get_outputs()[0].shape == ["N", 10]
    x = rng.integers(0, 256, (3, 3, 16, 16)).astype(np.float32)
    (got,) = session.run(None, {"x": x})
    (want,) = _float_run(model, {"x": x})
    assert got.shape == (3, 10)
    for i in range(3):
        (one,) = session.run(None, {"x": x[i : i + 1]})
        np.testing.assert_array_equal(got[i : i + 1], one)
        assert _cosine(got[i], want[i]) > 0.999 and not np.array_equal(got[i], want[i])
    done = threading.Event()
    answers: list = []

    def callback(outputs, user_data, error):
        answers.append((outputs, user_data, error))
        done.set()

    session.run_async(None, {"x": x}, callback, "tag")
    assert done.wait(30)
    outputs, tag, error = answers[0]
    assert error == "" and tag == "tag"
    np.testing.assert_array_equal(outputs[0], got)


def test_static_batch_model_keeps_its_batch() -> None:
    model = small_convnet()  # batch 1 in the model itself: nothing to restore
    calib = np.random.default_rng(8).integers(0, 256, (10, 1, 3, 16, 16)).astype(np.float32)
    result = _compile(model, calib)
    assert "dynamic batch" not in result.summary
    session = hailo_ort.InferenceSession(result.model, providers=EMULATOR)
    assert session.get_inputs()[0].shape == [1, 3, 16, 16]
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument, match="Got: 3"):
        session.run(None, {"x": np.zeros((3, 3, 16, 16), np.float32)})
