"""The session plan on the emulator and on a faulty device: parity, faults, threads, leaks."""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc

import numpy as np
import onnx
import onnxruntime
import pytest
import runtime_models as rm
from fake_devices import FaultyDevice, install_fake_hailort
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument
from pipeline_models import emulator as emulator_session
from runtime_models import ort_run

import hailo_ort
from hailo_ort.errors import DeviceError, HailoOrtError
from hailo_ort.runtime.devices.emulator import EmulatorDevice
from hailo_ort.runtime.plan import CpuStep, DeviceStep

CPU = ["CPUExecutionProvider"]
BOTH = ["HailoExecutionProvider", "CPUExecutionProvider"]
# The inputs the test models were calibrated on (see runtime_models): no saturation there.
CNN_CALIB_SEED = 7
TWO_PARTS_CALIB_SEED = 11


def quant_step(model: onnx.ModelProto, tensor: str) -> float:
    for found in hailo_ort.hailoop.read(model):
        for spec in found.compiled.outputs:
            if spec.tensor == tensor:
                return spec.quant.scale
    raise KeyError(tensor)


def test_emulator_output_is_close_to_float_but_not_identical() -> None:
    model, plain = rm.cnn()
    sess = emulator_session(model)
    assert sess.get_providers() == BOTH
    assert [type(s) for s in sess._plan.steps] == [CpuStep, DeviceStep, CpuStep]
    x = rm.calib([1, 3, 8, 8], CNN_CALIB_SEED)  # inside the calibrated ranges: no saturation
    feat, want = sess.run(["feat"], {"x": x})[0], ort_run(plain, {"x": x})[1]
    err = np.abs(feat - want)
    # input and output are quantized to 8 bits: a few output steps at most
    assert err.max() <= 4 * quant_step(model, "feat")
    assert err.max() > 0


def test_two_device_parts_with_a_cpu_branch() -> None:
    model, plain = rm.two_parts()
    sess = emulator_session(model)
    kinds = [(type(s).__name__, s.name) for s in sess._plan.steps]
    a, b = ("DeviceStep", "HailoOp_0"), ("DeviceStep", "HailoOp_1")
    assert a in kinds and b in kinds and kinds.index(a) < kinds.index(b)
    assert sorted(sess.device_nodes) == ["HailoOp_0", "HailoOp_1"]
    x = rm.calib([1, 3, 6, 6], TWO_PARTS_CALIB_SEED)
    z, side = sess.run(None, {"x": x})
    ref_z, ref_side = ort_run(plain, {"x": x})
    np.testing.assert_array_equal(side, -x)  # the CPU branch is exact
    np.testing.assert_array_equal(ref_side, side)
    assert np.abs(z - ref_z).max() <= 8 * quant_step(model, "z")


def test_plan_metadata_matches_onnxruntime_on_the_plain_model() -> None:
    model, plain = rm.cnn()
    sess = emulator_session(model)
    ref = onnxruntime.InferenceSession(plain.SerializeToString(), providers=CPU)
    assert [str(a) for a in sess.get_inputs()] == [str(a) for a in ref.get_inputs()]
    assert [str(a) for a in sess.get_outputs()] == [str(a) for a in ref.get_outputs()]
    assert sess.get_modelmeta().producer_name == "hailo-ort-tests"
    assert sess.get_provider_options()["HailoExecutionProvider"]["device"] == "emulator"


@pytest.mark.parametrize(
    ("feed", "ort_type"),
    [
        ({"z": np.zeros((1, 3, 8, 8), np.float32)}, ValueError),
        ({"x": np.zeros((1, 3, 8, 8), np.float32), "z": np.zeros(1)}, InvalidArgument),
        ({"x": np.zeros((1, 3, 8, 9), np.float32)}, InvalidArgument),
        ({"x": np.zeros((3, 8, 8), np.float32)}, InvalidArgument),
        ({"x": np.zeros((1, 3, 8, 8), np.float64)}, InvalidArgument),
    ],
)
def test_plan_bad_feeds_raise_onnxruntime_types(feed: dict, ort_type: type) -> None:
    model, plain = rm.cnn()
    with pytest.raises(ort_type):
        onnxruntime.InferenceSession(plain.SerializeToString(), providers=CPU).run(None, feed)
    sess = emulator_session(model)
    with pytest.raises(ort_type) as err:
        sess.run(None, feed)
    assert isinstance(err.value, HailoOrtError)
    with pytest.raises(InvalidArgument):
        sess.run(["nope"], {"x": np.zeros((1, 3, 8, 8), np.float32)})


def test_batches_are_split_by_batch_size(monkeypatch: pytest.MonkeyPatch) -> None:
    model4, _ = rm.cnn(batch=4)
    model1, _ = rm.cnn()
    device = FaultyDevice()
    install_fake_hailort(monkeypatch, device)
    sess = hailo_ort.InferenceSession(
        model4.SerializeToString(), providers=[("HailoExecutionProvider", {"batch_size": "2"})]
    )
    assert sess.get_providers() == BOTH
    x = rm.calib([4, 3, 8, 8], 8)
    feat = sess.run(["feat"], {"x": x})[0]
    assert device.calls == 2
    assert feat.shape == (4, 4, 8, 8)
    single = emulator_session(model1)
    for i in range(4):
        np.testing.assert_array_equal(feat[i : i + 1], single.run(["feat"], {"x": x[i : i + 1]})[0])
    odd = emulator_session(model4, batch_size=3)
    np.testing.assert_array_equal(odd.run(["feat"], {"x": x})[0], feat)


@pytest.mark.parametrize("mode", ["raise", "hang", "bad_shape", "raise_in_submit"])
def test_device_faults_fall_back_to_cpu_for_that_request(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    model, plain = rm.cnn()
    device = FaultyDevice()
    install_fake_hailort(monkeypatch, device)
    sess = hailo_ort.InferenceSession(
        model.SerializeToString(), providers=[("HailoExecutionProvider", {"timeout_ms": "100"})]
    )
    x = rm.calib([1, 3, 8, 8], CNN_CALIB_SEED)
    want = ort_run(plain, {"x": x})
    device.mode = mode
    start = time.monotonic()
    got = sess.run(None, {"x": x})
    assert time.monotonic() - start < 3.0
    for g, w in zip(got, want):  # the float body ran: exact up to float rounding
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
    device.mode = None  # the session stays usable, back on the device
    feat = sess.run(["feat"], {"x": x})[0]
    assert 0 < np.abs(feat - want[1]).max() <= 4 * quant_step(model, "feat")


@pytest.mark.parametrize("mode", ["raise", "hang"])
def test_device_faults_raise_with_fallback_error(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    model, _ = rm.cnn()
    device = FaultyDevice()
    install_fake_hailort(monkeypatch, device)
    sess = hailo_ort.InferenceSession(
        model.SerializeToString(),
        providers=[("HailoExecutionProvider", {"timeout_ms": "100", "fallback": "error"})],
    )
    x = rm.calib([1, 3, 8, 8], 14)
    device.mode = mode
    with pytest.raises(DeviceError, match="HailoOp_0"):
        sess.run(None, {"x": x})
    device.mode = None
    y, feat = sess.run(None, {"x": x})
    assert y.shape == (1, 4) and feat.shape == (1, 4, 8, 8)


def test_device_fault_without_fallback_body_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    model, _ = rm.cnn(with_fallback=False)
    device = FaultyDevice()
    install_fake_hailort(monkeypatch, device)
    sess = hailo_ort.InferenceSession(model.SerializeToString())
    device.mode = "raise"
    with pytest.raises(DeviceError, match="no float fallback"):
        sess.run(None, {"x": rm.calib([1, 3, 8, 8], 1)})


def test_hef_only_partition_on_the_emulator(caplog: pytest.LogCaptureFixture) -> None:
    model, plain = rm.cnn(with_emulation=False, hef=rm.fixture_hef())
    sess = emulator_session(model)
    assert sess.get_providers() == CPU
    x = rm.calib([1, 3, 8, 8], 2)
    np.testing.assert_allclose(sess.run(["y"], {"x": x})[0], ort_run(plain, {"x": x})[0], atol=1e-6)
    with pytest.raises(DeviceError, match="only a HEF"):
        emulator_session(model, fallback="error")


def test_set_providers_switches_between_device_and_cpu() -> None:
    model, _ = rm.cnn()
    sess = emulator_session(model)
    assert sess.get_providers() == BOTH
    sess.set_providers(CPU)
    assert sess.get_providers() == CPU
    sess.set_providers([("HailoExecutionProvider", {"device": "emulator"}), "CPUExecutionProvider"])
    assert sess.get_providers() == BOTH
    assert sess.run(["y"], {"x": rm.calib([1, 3, 8, 8], 3)})[0].shape == (1, 4)


def test_plan_run_async_and_iobinding() -> None:
    model, _ = rm.cnn()
    sess = emulator_session(model)
    x = rm.calib([1, 3, 8, 8], 30)
    want = sess.run(None, {"x": x})
    done = threading.Event()
    box = {}

    def callback(outputs, user_data, err):
        box.update(out=outputs, ud=user_data, err=err)
        done.set()

    sess.run_async(None, {"x": x}, callback, 7)
    assert done.wait(10) and box["ud"] == 7 and box["err"] == ""
    for g, w in zip(box["out"], want):
        np.testing.assert_array_equal(g, w)
    binding = sess.io_binding()
    binding.bind_cpu_input("x", x)
    y_buf = np.zeros((1, 4), np.float32)
    binding.bind_output("y", "cpu", 0, np.float32, [1, 4], y_buf.ctypes.data)
    binding.bind_output("feat")
    sess.run_with_iobinding(binding)
    np.testing.assert_array_equal(y_buf, want[0])
    outs = binding.copy_outputs_to_cpu()
    np.testing.assert_array_equal(outs[1], want[1])


def test_plan_iobinding_pointer_input_ortvalue_output_and_clearing() -> None:
    model, _ = rm.cnn()
    sess = emulator_session(model)
    x = rm.calib([1, 3, 8, 8], 31)
    want = sess.run(None, {"x": x})
    binding = sess.io_binding()
    binding.bind_input("x", "cpu", 0, np.float32, list(x.shape), x.ctypes.data)
    y_value = onnxruntime.OrtValue.ortvalue_from_numpy(np.zeros((1, 4), np.float32))
    binding.bind_ortvalue_output("y", y_value)
    sess.run_with_iobinding(binding)
    np.testing.assert_array_equal(y_value.numpy(), want[0])
    assert binding.get_outputs() == [y_value]
    binding.clear_binding_outputs()
    binding.bind_output("feat")
    sess.run_with_iobinding(binding)
    outs = binding.copy_outputs_to_cpu()
    assert len(outs) == 1
    np.testing.assert_array_equal(outs[0], want[1])
    binding.clear_binding_inputs()
    with pytest.raises(ValueError, match="Required inputs"):
        sess.run_with_iobinding(binding)
    with pytest.raises(InvalidArgument, match="only cpu memory"):
        binding.bind_input("x", "cuda", 0, np.float32, list(x.shape), x.ctypes.data)


def test_many_threads_on_one_session() -> None:
    model, _ = rm.two_parts()
    sess = emulator_session(model, batch_size=2)
    inputs = [rm.calib([1, 3, 6, 6], 100 + i) for i in range(8)]
    expected = [sess.run(None, {"x": x}) for x in inputs]
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for r in range(15):
                i = (k + r) % len(inputs)
                got = sess.run(None, {"x": inputs[i]})
                for g, w in zip(got, expected[i]):
                    np.testing.assert_array_equal(g, w)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[0]


def test_many_sessions_release_their_workers() -> None:
    model, _ = rm.cnn()
    baseline = threading.active_count()
    x = rm.calib([1, 3, 8, 8], 40)
    sessions = [emulator_session(model) for _ in range(12)]
    outs = [s.run(["y"], {"x": x})[0] for s in sessions]
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    for s in sessions:
        s.close()
    del sessions
    gc.collect()
    assert threading.active_count() <= baseline + 1


def test_no_leak_over_many_runs() -> None:
    model, _ = rm.cnn()
    sess = emulator_session(model)
    x = rm.calib([1, 3, 8, 8], 41)
    for _ in range(50):
        sess.run(None, {"x": x})
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(2000):
        sess.run(None, {"x": x})
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert growth < 1_000_000, f"{growth} bytes retained over 2,000 runs"


def test_emulator_device_contract() -> None:
    model, _ = rm.cnn()
    compiled = hailo_ort.hailoop.read(model)[0].compiled
    device = EmulatorDevice(latency_ms=150)
    part = device.load(compiled, batch_size=1)
    spec = compiled.inputs[0]
    q = np.zeros(spec.device_shape, np.uint8)
    done = threading.Event()
    box = {}

    def finished(out, err):
        box.update(out=out, err=err)
        done.set()

    part.infer_async({spec.vstream: q}, finished, 5000)
    assert not done.is_set()  # queued: the modelled latency has not elapsed yet
    assert done.wait(5) and box["err"] is None
    out_spec = compiled.outputs[0]
    assert box["out"][out_spec.vstream].shape == tuple(out_spec.device_shape)
    assert box["out"][out_spec.vstream].dtype == np.uint8
    with pytest.raises(DeviceError, match="uint8"):
        part.infer({spec.vstream: q.astype(np.float32)}, 1000)
    with pytest.raises(DeviceError, match="expected inputs"):
        part.infer({"nope": q}, 1000)
    with pytest.raises(DeviceError, match="batch size"):
        part.infer({spec.vstream: np.zeros([2, *spec.device_shape[1:]], np.uint8)}, 1000)
    device.close()
    with pytest.raises(DeviceError, match="closed"):
        part.infer({spec.vstream: q}, 1000)


def test_cpu_segment_with_subgraph_reading_outer_tensors() -> None:
    """An unnamed If node after the device part reads ``feat`` and an initializer from inside."""
    from onnx import TensorProto, helper, numpy_helper

    part = rm.conv_part(3, 4, 8, seed=1, name="dev")
    feat_vi = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 8, 8])
    then_g = helper.make_graph(
        [helper.make_node("Add", ["feat", "bias"], ["o_then"])],
        "then",
        [],
        [helper.make_tensor_value_info("o_then", TensorProto.FLOAT, [1, 4, 8, 8])],
    )
    else_g = helper.make_graph(
        [helper.make_node("Neg", ["feat"], ["o_else"])],
        "else",
        [],
        [helper.make_tensor_value_info("o_else", TensorProto.FLOAT, [1, 4, 8, 8])],
    )
    if_node = helper.make_node("If", ["cond"], ["out"], then_branch=then_g, else_branch=else_g)
    inits = [numpy_helper.from_array(np.array(3.0, np.float32), "bias")]
    io_in = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
        helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
    ]
    nodes, part_inits = rm.inline(part, ["x"], ["feat"], "dev_")
    plain = rm.make_model([*nodes, if_node], io_in, [feat_vi], inits + part_inits)
    plain.graph.node[-1].name = ""  # the If node stays unnamed
    calib = [{"x": rm.calib([1, 3, 8, 8], CNN_CALIB_SEED), "cond": np.array(True)}]
    cp = rm.compile_part(plain, 0, plain.graph.node[: len(nodes)], ["x"], ["feat"], calib)
    model = rm.hailo_model(plain, [cp])
    assert model.graph.node[-1].op_type == "If" and not model.graph.node[-1].name
    sess = emulator_session(model)
    assert sess.device_nodes == ["HailoOp_0"]
    x = rm.calib([1, 3, 8, 8], CNN_CALIB_SEED)
    step = quant_step(model, "feat")
    for cond in (True, False):
        feed = {"x": x, "cond": np.array(cond)}
        got, want = sess.run(None, feed)[0], ort_run(plain, feed)[0]
        assert 0 < np.abs(got - want).max() <= 4 * step


def test_raw_uint8_streams_are_only_relaid_out() -> None:
    """Host uint8 NCHW ↔ device uint8 NHWC: values pass unchanged (as Hailo's fork models do)."""
    import json

    from onnx import TensorProto, helper, numpy_helper

    from hailo_ort.hailoop.types import StreamSpec

    def spec(vstream: str, tensor: str) -> StreamSpec:
        return StreamSpec(vstream, tensor, [1, 3, 4, 4], "uint8", [1, 4, 4, 3], "NHWC", "uint8")

    ins, outs = [spec("raw/in", "x")], [spec("raw/out", "y")]
    emu_graph = helper.make_graph(  # reverse the channels (last axis on the device)
        [helper.make_node("Gather", ["raw/in", "idx"], ["raw/out"], axis=3)],
        "emu",
        [helper.make_tensor_value_info("raw/in", TensorProto.UINT8, [1, 4, 4, 3])],
        [helper.make_tensor_value_info("raw/out", TensorProto.UINT8, [1, 4, 4, 3])],
        initializer=[numpy_helper.from_array(np.array([2, 1, 0], np.int64), "idx")],
    )
    emu = helper.make_model(emu_graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    part = {"index": 0, "nodes": ["g"], "inputs": [], "outputs": []}
    meta = {
        "format": 1,
        "arch": "hailo8",
        "backend": "emulate",
        "partition": part,
        "inputs": [s.to_dict() for s in ins],
        "outputs": [s.to_dict() for s in outs],
    }
    node = helper.make_node(
        "HailoOp", ["x"], ["y"], name="raw", domain="ai.hailo", hef=b"",
        sorted_input_names=["raw/in"], sorted_output_names=["raw/out"],
        input_format_order=[11], output_format_order=[11], input_quantized=[0], output_quantized=[0],
        hailo_ort_meta=json.dumps(meta), hailo_ort_emulation=emu.SerializeToString(),
    )  # fmt: skip
    graph = helper.make_graph(
        [node],
        "raw",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 3, 4, 4])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.hailo", 1)],
        ir_version=10,
    )
    sess = emulator_session(model)
    x = np.arange(48, dtype=np.uint8).reshape(1, 3, 4, 4) * 5
    y = sess.run(None, {"x": x})[0]
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y, x[:, ::-1])


def test_closed_session_says_so() -> None:
    model, _ = rm.cnn()
    sess = emulator_session(model)
    sess.close()
    sess.close()  # idempotent
    with pytest.raises(HailoOrtError, match="closed"):
        sess.run(None, {"x": rm.calib([1, 3, 8, 8], 1)})


def test_emulator_gathers_queued_frames_into_device_batches() -> None:
    model, _ = rm.cnn()
    compiled = hailo_ort.hailoop.read(model)[0].compiled
    device = EmulatorDevice(latency_ms=200)
    part = device.load(compiled, batch_size=4)
    spec = compiled.inputs[0]
    done = threading.Semaphore(0)
    errors = []

    def finished(out, err):
        if err is not None:
            errors.append(err)
        done.release()

    for i in range(4):
        part.infer_async({spec.vstream: np.full(spec.device_shape, i, np.uint8)}, finished, 5000)
    for _ in range(4):
        assert done.acquire(timeout=5)
    assert not errors
    # the first frame may start alone; the three queued behind it share one batch
    assert part.batches_run <= 2
    device.close()


def test_overridable_initializer_in_a_cpu_segment() -> None:
    """An initializer that is also a graph input: its default is used unless it is fed."""
    from onnx import TensorProto, helper

    model, plain = rm.cnn()
    for m in (model, plain):
        m.ir_version = 10
        m.graph.input.append(helper.make_tensor_value_info("two", TensorProto.FLOAT, []))
    sess = emulator_session(model)
    ref = onnxruntime.InferenceSession(plain.SerializeToString(), providers=CPU)
    assert [a.name for a in sess.get_overridable_initializers()] == ["two"]
    assert [a.name for a in ref.get_overridable_initializers()] == ["two"]
    x = rm.calib([1, 3, 8, 8], CNN_CALIB_SEED)
    step = quant_step(model, "feat")
    default = sess.run(["feat"], {"x": x})[0]
    assert np.abs(default - ref.run(["feat"], {"x": x})[0]).max() <= 4 * step
    half = {"x": x, "two": np.array(1.0, np.float32)}  # Mul by 1 instead of 2
    overridden = sess.run(["feat"], half)[0]
    assert np.abs(overridden - ref.run(["feat"], half)[0]).max() <= 4 * step
    assert np.abs(overridden - default).max() > 10 * step
