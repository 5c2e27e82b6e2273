"""InferenceSession as a drop-in for onnxruntime's: pass-through, CPU fallback, session()."""

from __future__ import annotations

import logging
import threading

import numpy as np
import onnx
import onnxruntime
import pytest
import runtime_models as rm
from fake_devices import install_fake_hailort
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument
from runtime_models import ort_run

import hailo_ort
from hailo_ort.errors import CompileError, DeviceError, HailoOrtError, ModelError
from hailo_ort.runtime import session as session_module

CPU = ["CPUExecutionProvider"]


@pytest.fixture
def no_hailort(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    return install_fake_hailort(monkeypatch, None)


# ---- pass-through ---------------------------------------------------------------------------


def test_plain_model_matches_onnxruntime(tmp_path) -> None:
    model = rm.tiny_plain()
    path = tmp_path / "tiny.onnx"
    onnx.save(model, str(path))
    x = np.linspace(-2, 2, 16, dtype=np.float32).reshape(1, 16)
    ours = hailo_ort.InferenceSession(str(path))
    ref = onnxruntime.InferenceSession(str(path), providers=CPU)
    np.testing.assert_array_equal(ours.run(None, {"x": x})[0], np.maximum(x + 1, 0))
    assert [str(a) for a in ours.get_inputs()] == [str(a) for a in ref.get_inputs()]
    assert [str(a) for a in ours.get_outputs()] == [str(a) for a in ref.get_outputs()]
    assert ours.get_providers() == ["CPUExecutionProvider"]
    assert ours.get_modelmeta().graph_name == "tiny"
    assert ours.get_overridable_initializers() == []
    assert "CPUExecutionProvider" in ours.get_provider_options()
    assert isinstance(ours.get_session_options(), onnxruntime.SessionOptions)


@pytest.mark.parametrize(
    ("feed", "ort_type"),
    [
        ({"z": np.zeros((1, 16), np.float32)}, ValueError),  # wrong name = x missing
        ({}, ValueError),
        ({"x": np.zeros((1, 16), np.float32), "z": np.zeros(1)}, InvalidArgument),
        ({"x": np.zeros((2, 16), np.float32)}, InvalidArgument),
        ({"x": np.zeros((16,), np.float32)}, InvalidArgument),
        ({"x": np.zeros((1, 16), np.float64)}, InvalidArgument),
    ],
)
def test_bad_feeds_raise_onnxruntime_types(feed: dict, ort_type: type) -> None:
    model = rm.tiny_plain().SerializeToString()
    with pytest.raises(ort_type):
        onnxruntime.InferenceSession(model, providers=CPU).run(None, feed)
    with pytest.raises(ort_type) as err:
        hailo_ort.InferenceSession(model).run(None, feed)
    assert isinstance(err.value, HailoOrtError)


def test_unknown_output_name_is_invalid_argument() -> None:
    sess = hailo_ort.InferenceSession(rm.tiny_plain().SerializeToString())
    with pytest.raises(InvalidArgument, match="q"):
        sess.run(["q"], {"x": np.zeros((1, 16), np.float32)})


def test_passthrough_run_async_and_iobinding() -> None:
    sess = hailo_ort.InferenceSession(rm.tiny_plain().SerializeToString())
    x = np.full((1, 16), 2.0, np.float32)
    done = threading.Event()
    box = {}

    def callback(outputs, user_data, err):
        box["out"], box["ud"], box["err"] = outputs, user_data, err
        done.set()

    sess.run_async(None, {"x": x}, callback, "tag")
    assert done.wait(5)
    assert box["ud"] == "tag" and not box["err"]
    np.testing.assert_array_equal(box["out"][0], x + 1)
    binding = sess.io_binding()
    binding.bind_cpu_input("x", x)
    binding.bind_output("y")
    sess.run_with_iobinding(binding)
    np.testing.assert_array_equal(binding.copy_outputs_to_cpu()[0], x + 1)


def test_missing_or_malformed_model_is_a_model_error(tmp_path) -> None:
    with pytest.raises(ModelError, match="not found"):
        hailo_ort.InferenceSession(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a model")
    with pytest.raises(ModelError):
        hailo_ort.InferenceSession(str(bad))


@pytest.mark.parametrize("case", ["missing", "folder", "garbage", "garbage-bytes"])
def test_load_errors_keep_onnxruntime_types(tmp_path, case: str) -> None:
    """Code written for onnxruntime (``except NoSuchFile``) still catches our load errors."""
    source: object = {
        "missing": tmp_path / "missing.onnx",
        "folder": tmp_path,
        "garbage": tmp_path / "bad.onnx",
        "garbage-bytes": b"\x00not a model",
    }[case]
    (tmp_path / "bad.onnx").write_bytes(b"\x00not a model")
    with pytest.raises(Exception) as theirs:
        onnxruntime.InferenceSession(source if isinstance(source, bytes) else str(source))
    with pytest.raises(ModelError) as ours:
        hailo_ort.InferenceSession(source)
    assert isinstance(ours.value, type(theirs.value)), (type(ours.value), type(theirs.value))
    if case == "folder":
        assert "is a folder" in str(ours.value)


def test_plan_session_describes_itself_with_onnxruntime_objects() -> None:
    """A plan session's NodeArg / ModelMetadata are onnxruntime's, equal to a plain session's."""
    model, _ = rm.cnn()
    model.producer_name, model.doc_string = "me", "a doc"
    onnx.helper.set_model_props(model, {"k": "v"})
    ours = hailo_ort.InferenceSession(
        model.SerializeToString(),
        providers=[("HailoExecutionProvider", {"device": "emulator"}), "CPUExecutionProvider"],
    )
    assert ours.device_nodes  # the plan path, not the pass-through
    ref = onnxruntime.InferenceSession(model.SerializeToString(), providers=CPU)
    for got, want in [
        (ours.get_inputs(), ref.get_inputs()),
        (ours.get_outputs(), ref.get_outputs()),
    ]:
        assert all(isinstance(a, onnxruntime.NodeArg) for a in got)
        assert [(a.name, a.type, a.shape) for a in got] == [(a.name, a.type, a.shape) for a in want]
    meta, want_meta = ours.get_modelmeta(), ref.get_modelmeta()
    assert isinstance(meta, onnxruntime.ModelMetadata)
    fields = ["producer_name", "graph_name", "domain", "description", "version"]
    assert [getattr(meta, f) for f in fields] == [getattr(want_meta, f) for f in fields]
    assert meta.custom_metadata_map == want_meta.custom_metadata_map == {"k": "v"}
    assert meta.version == 2**63 - 1  # onnxruntime's value for an unset model_version


# ---- HailoOp models without a device ----------------------------------------------------------


@pytest.mark.usefixtures("no_hailort")
def test_no_device_runs_float_fallback_like_plain_onnxruntime() -> None:
    model, plain = rm.cnn()
    x = rm.calib([1, 3, 8, 8], 3)
    sess = hailo_ort.InferenceSession(model.SerializeToString())
    assert sess.get_providers() == ["CPUExecutionProvider"]
    assert sess.device_nodes == []
    for got, want in zip(sess.run(None, {"x": x}), ort_run(plain, {"x": x})):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.usefixtures("no_hailort")
def test_no_device_with_fallback_error_raises() -> None:
    model, _ = rm.cnn()
    with pytest.raises(DeviceError, match="fallback=error"):
        hailo_ort.InferenceSession(
            model.SerializeToString(), providers=[("HailoExecutionProvider", {"fallback": "error"})]
        )


@pytest.mark.usefixtures("no_hailort")
def test_model_without_fallback_body_needs_a_device() -> None:
    model, _ = rm.cnn(with_fallback=False, with_emulation=False, hef=rm.fixture_hef())
    with pytest.raises(DeviceError, match=r"needs a Hailo device.*HailoOp_0"):
        hailo_ort.InferenceSession(model.SerializeToString())


def test_explicit_hailort_device_missing(no_hailort: list[dict]) -> None:
    model, _ = rm.cnn()
    opts = {"device": "hailort", "device_id": "0000:01:00.0", "group_id": "SHARED"}
    sess = hailo_ort.InferenceSession(
        model.SerializeToString(), providers=[("HailoExecutionProvider", opts)]
    )
    assert sess.get_providers() == ["CPUExecutionProvider"]
    assert no_hailort == [
        {"device_id": "0000:01:00.0", "group_id": "SHARED", "multi_process_service": False}
    ]
    with pytest.raises(DeviceError, match="HailoRT"):
        hailo_ort.InferenceSession(
            model.SerializeToString(),
            providers=[("HailoExecutionProvider", {**opts, "fallback": "error"})],
        )


def test_cpu_only_providers_run_the_fallback() -> None:
    model, plain = rm.cnn()
    x = rm.calib([1, 3, 8, 8], 4)
    sess = hailo_ort.InferenceSession(model.SerializeToString(), providers=CPU)
    assert sess.get_providers() == CPU
    np.testing.assert_allclose(sess.run(["y"], {"x": x})[0], ort_run(plain, {"x": x})[0], atol=1e-6)


def test_shared_fork_model_needs_a_device(no_hailort: list[dict]) -> None:
    from conftest import shared_fixture

    path = shared_fixture("hailo-fork/shortcut_example.onnx")
    with pytest.raises(DeviceError, match="needs a Hailo device"):
        hailo_ort.InferenceSession(str(path))


# ---- Hailo's fork ---------------------------------------------------------------------------


def test_fork_flavour_runs_through_the_fork_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    model, _ = rm.cnn(with_fallback=False, with_emulation=False, hef=rm.fixture_hef())
    model.ir_version = 8
    created = []

    class RecordingSession:
        def __init__(self, model, sess_options=None, providers=None, provider_options=None, **kw):
            created.append(providers)

        def get_providers(self) -> list[str]:
            return list(created[-1])

    monkeypatch.setattr(session_module, "fork_provider_available", lambda: True)
    monkeypatch.setattr(onnxruntime, "InferenceSession", RecordingSession)
    sess = hailo_ort.InferenceSession(model.SerializeToString())
    assert created == [["HailoExecutionProvider", "CPUExecutionProvider"]]
    assert sess.get_providers()[0] == "HailoExecutionProvider"


# ---- hailo_ort.session ------------------------------------------------------------------------


@pytest.mark.usefixtures("no_hailort")
def test_session_without_compiler_runs_on_cpu_and_logs_once(
    tmp_path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(session_module, "_dfc_available", lambda: False)
    import hailo_ort.runtime.plan as plan_module

    monkeypatch.setattr(plan_module, "_logged", set())
    path = tmp_path / "tiny.onnx"
    onnx.save(rm.tiny_plain(), str(path))
    with caplog.at_level(logging.INFO, logger="hailo_ort"):
        first = hailo_ort.session(str(path))
        hailo_ort.session(str(path))
    messages = [r.getMessage() for r in caplog.records if "hailo-ort compile" in r.getMessage()]
    assert len(messages) == 1 and "tiny.onnx" in messages[0]
    assert "compile='emulate'" in messages[0]  # the way to try it here
    x = np.ones((1, 16), np.float32)
    np.testing.assert_array_equal(first.run(None, {"x": x})[0], x + 1)
    assert first.get_providers() == CPU
    with pytest.raises(CompileError, match="DFC"):
        hailo_ort.session(str(path), compile="dfc")


@pytest.mark.usefixtures("no_hailort")
def test_session_compile_emulate_runs_on_the_emulator(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HAILO_ORT_CACHE_DIR", str(tmp_path / "cache"))
    _, plain = rm.cnn()
    calibration = [{"x": rm.calib([1, 3, 8, 8], seed)} for seed in range(20, 40)]
    sess = hailo_ort.session(plain, compile="emulate", arch="hailo8", calibration=calibration)
    assert sess.get_providers() == ["HailoExecutionProvider", "CPUExecutionProvider"]
    assert sess.get_provider_options()["HailoExecutionProvider"]["device"] == "emulator"
    assert sess.device_nodes == ["HailoOp_0"]
    x = rm.calib([1, 3, 8, 8], 9)
    got = sess.run(["y"], {"x": x})[0]
    want = ort_run(plain, {"x": x})[0]
    assert 0 < np.abs(got - want).max() <= 0.05
    assert list(tmp_path.glob("*.onnx")) == []  # compiled in memory


@pytest.mark.usefixtures("no_hailort")
def test_session_rejects_bad_options() -> None:
    with pytest.raises(HailoOrtError, match="known options"):
        hailo_ort.session(rm.tiny_plain(), compile=False, colour="blue")
    with pytest.raises(CompileError, match="compile="):
        hailo_ort.session(rm.tiny_plain(), compile="tensorflow")


def test_invalid_graph_is_a_model_error_of_onnxruntime_type() -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Relu", ["x"], ["y"])],
        "dup",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    with pytest.raises(Exception) as ref:
        onnxruntime.InferenceSession(data, providers=CPU)
    with pytest.raises(ModelError) as err:
        hailo_ort.InferenceSession(data)
    assert isinstance(err.value, type(ref.value))


@pytest.mark.usefixtures("no_hailort")
def test_malformed_hailoop_metadata_is_a_format_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import hailo_ort.runtime.plan as plan_module
    from hailo_ort.errors import HailoOpFormatError

    def broken_reader(model):
        raise KeyError("inputs")

    monkeypatch.setattr(plan_module, "read", broken_reader)  # the reader the plan calls
    model, _ = rm.cnn()
    with pytest.raises(HailoOpFormatError, match="malformed HailoOp"):
        hailo_ort.InferenceSession(model.SerializeToString())


@pytest.mark.usefixtures("no_hailort")
def test_session_compile_failure(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import hailo_ort.runtime.plan as plan_module

    def failing_compile(model, arch=None, backend=None, **kw):
        raise CompileError("DFC: unsupported layer")

    monkeypatch.setattr(hailo_ort, "compile", failing_compile, raising=False)
    monkeypatch.setattr(session_module, "_dfc_available", lambda: True)
    monkeypatch.setattr(plan_module, "_logged", set())
    with caplog.at_level(logging.WARNING, logger="hailo_ort"):
        sess = hailo_ort.session(rm.tiny_plain(), arch="hailo8l")  # auto: falls back, says why
    assert sess.get_providers() == CPU
    assert any("unsupported layer" in r.getMessage() for r in caplog.records)
    with pytest.raises(CompileError, match="unsupported layer"):
        hailo_ort.session(rm.tiny_plain(), compile="emulate")


def test_import_swap_drop_in() -> None:
    """Code written against onnxruntime runs with `import hailo_ort as ort`."""
    import hailo_ort as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(
        rm.tiny_plain().SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    x = ort.OrtValue.ortvalue_from_numpy(np.ones((1, 16), np.float32))
    out = sess.run_with_ort_values(["y"], {"x": x}, ort.RunOptions())
    np.testing.assert_array_equal(out[0].numpy(), np.full((1, 16), 2.0, np.float32))
    assert ort.get_device() == onnxruntime.get_device()
