"""N-frame requests on a model compiled per frame from a dynamic batch run through the pipeline."""

from __future__ import annotations

import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from pipeline_models import compile_emulated, emulator
from test_pipelining import _fail_on_constant_frames, _RecordingClock

import hailo_ort
from hailo_ort.errors import DeviceError
from hailo_ort.runtime.pipeline import Pipeline


def dynamic_two_partition_model() -> onnx.ModelProto:
    """CPU Resize → Conv/Relu (device) → CPU Resize → Conv/Relu (device) → CPU ArgMax, Resize,
    with a symbolic batch dim ``N`` (the Resizes use scales, so no node hard-codes the batch)."""
    rng = np.random.default_rng(0)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def conv(x: str, cin: int, cout: int, name: str) -> str:
        w = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2 / (cin * 9))).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"{name}_w"))
        inits.append(numpy_helper.from_array(np.zeros(cout, np.float32), f"{name}_b"))
        nodes.append(
            helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [name], pads=[1] * 4, name=name)
        )
        nodes.append(helper.make_node("Relu", [name], [f"{name}_r"], name=f"{name}_relu"))
        return f"{name}_r"

    def resize(x: str, scale: float, out: str) -> None:
        scales = np.array([1, 1, scale, scale], np.float32)
        inits.append(numpy_helper.from_array(scales, f"{out}_scales"))
        nodes.append(
            helper.make_node("Resize", [x, "", f"{out}_scales"], [out], mode="cubic", name=out)
        )

    resize("x", 0.5, "pre")  # 32 -> 16
    a = conv("pre", 3, 8, "c1")
    resize(a, 0.75, "mid")  # 16 -> 12
    b = conv("mid", 8, 4, "c2")
    nodes.append(helper.make_node("ArgMax", [b], ["y"], axis=1, keepdims=0, name="argmax"))
    resize(b, 0.5, "z")  # 12 -> 6
    graph = helper.make_graph(
        nodes,
        "dynamic_two_partitions",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [
            helper.make_tensor_value_info("y", TensorProto.INT64, ["N", 12, 12]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4, 6, 6]),
        ],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.fixture(scope="module")
def compiled() -> bytes:
    result = compile_emulated(dynamic_two_partition_model(), input_shapes={"x": [1, 3, 32, 32]})
    assert "dynamic batch dim (N) is kept" in result.summary
    return result.model.SerializeToString()


def frames(n: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 32, 32)).astype(np.float32)


def per_frame(sess: hailo_ort.InferenceSession, x: np.ndarray) -> list[np.ndarray]:
    """The reference: each frame run alone, outputs stacked in frame order."""
    runs = [sess.run(None, {"x": x[i : i + 1]}) for i in range(len(x))]
    return [np.concatenate(parts, axis=0) for parts in zip(*runs)]


def batches_run(sess: hailo_ort.InferenceSession) -> list[int]:
    return [p.batches_run for p in sess._device._loaded]  # type: ignore[union-attr]


def test_model_has_two_device_partitions_and_a_dynamic_batch(compiled: bytes) -> None:
    sess = emulator(compiled)
    assert len(sess.device_nodes) == 2
    assert sess.get_inputs()[0].shape == ["N", 3, 32, 32]
    sess.close()


@pytest.mark.parametrize("batch_size", [1, 4])
def test_n_frames_equal_per_frame_runs_in_order(compiled: bytes, batch_size: int) -> None:
    sess = emulator(compiled, batch_size=batch_size)
    x = frames(6)
    want = per_frame(sess, x)
    assert want[0].shape == (6, 12, 12) and want[1].shape == (6, 4, 6, 6)
    # the frames differ, so a reordering would show
    assert len({want[1][i].tobytes() for i in range(6)}) == 6
    got = sess.run(None, {"x": x})
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    only_z = sess.run(["z"], {"x": x})
    np.testing.assert_array_equal(only_z[0], want[1])
    sess.close()


def test_frames_share_device_batches_with_batch_size_4(compiled: bytes) -> None:
    sess = emulator(compiled, batch_size=4, latency_ms=20)
    x = frames(8, seed=5)
    before = batches_run(sess)
    want = per_frame(sess, x)
    # one frame at a time: one device batch per frame on each partition
    assert [a - b for a, b in zip(batches_run(sess), before)] == [8, 8]
    before = batches_run(sess)
    got = sess.run(None, {"x": x})
    used = [a - b for a, b in zip(batches_run(sess), before)]
    assert all(2 <= u < 8 for u in used), used  # at most 4 frames per batch, some shared
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    sess.close()


def test_frames_overlap_across_the_device_stages_with_batch_size_1(
    compiled: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hailo_ort.runtime.devices import emulator as emulator_module

    clock = _RecordingClock()
    monkeypatch.setattr(emulator_module, "time", clock)
    sess = emulator(compiled, latency_ms=20)
    x = frames(6, seed=1)
    want = per_frame(sess, x)
    assert len(clock.intervals) == 12 and clock.overlapping_pairs() == 0
    clock.intervals.clear()
    got = sess.run(None, {"x": x})
    assert len(clock.intervals) == 12  # batch_size 1: one device batch per frame and partition
    assert clock.overlapping_pairs() >= 1, clock.intervals
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    sess.close()


@pytest.mark.parametrize("batch_size", [1, 4])
def test_a_failing_frame_fails_the_request_and_the_session_stays_usable(
    compiled: bytes, monkeypatch: pytest.MonkeyPatch, batch_size: int
) -> None:
    sess = emulator(compiled, fallback="error", batch_size=batch_size)
    x = frames(5, seed=2)
    want = per_frame(sess, x)
    _fail_on_constant_frames(monkeypatch)
    bad = x.copy()
    bad[3] = 1.0  # the emulated device fails a batch holding this frame
    with pytest.raises(DeviceError, match="injected"):
        sess.run(None, {"x": bad})
    got = sess.run(None, {"x": x})
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    # run_async: the callback gets the error and no outputs
    answers: list = []
    done = threading.Event()

    def callback(outputs, user_data, error):
        answers.append((outputs, user_data, error))
        done.set()

    sess.run_async(None, {"x": bad}, callback, "bad")
    assert done.wait(20)
    assert answers[0][0] == [] and answers[0][1] == "bad" and "injected" in answers[0][2]
    done.clear()
    sess.run_async(None, {"x": x}, callback, "good")
    assert done.wait(20)
    outputs, tag, error = answers[1]
    assert error == "" and tag == "good"
    for g, w in zip(outputs, want):
        np.testing.assert_array_equal(g, w)
    sess.close()


def test_one_frame_stays_off_the_pipeline(compiled: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    sess = emulator(compiled)
    x = frames(3, seed=4)
    want = per_frame(sess, x)

    def no_pipeline(*args, **kwargs):
        raise AssertionError("a one-frame run must not start the pipeline")

    monkeypatch.setattr(Pipeline, "__init__", no_pipeline)
    got = sess.run(None, {"x": x[1:2]})
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w[1:2])
    assert sess._pipeline is None
    sess.close()


def test_concurrent_callers_each_get_their_own_frames(compiled: bytes) -> None:
    sess = emulator(compiled, batch_size=4)
    inputs = [frames(n, seed=10 + n) for n in (2, 3, 5, 4)]
    wants = [per_frame(sess, x) for x in inputs]
    failures: list[str] = []

    def caller(k: int) -> None:
        for _ in range(3):
            got = sess.run(None, {"x": inputs[k]})
            if not all(np.array_equal(g, w) for g, w in zip(got, wants[k])):
                failures.append(f"caller {k}")

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert not failures
    sess.close()


def test_n_frames_from_a_run_async_callback_do_not_deadlock(compiled: bytes) -> None:
    sess = emulator(compiled)
    x = frames(3, seed=6)
    want = per_frame(sess, x)
    answers: list = []
    done = threading.Event()

    def callback(outputs, user_data, error):
        answers.append(sess.run(None, {"x": x}))  # on a pipeline thread
        done.set()

    sess.run_async(None, {"x": x}, callback, None)
    assert done.wait(30)
    for g, w in zip(answers[0], want):
        np.testing.assert_array_equal(g, w)
    sess.close()


def test_closing_the_session_fails_a_waiting_request(compiled: bytes) -> None:
    sess = emulator(compiled, latency_ms=30)
    errors: list[BaseException] = []

    def caller() -> None:
        try:
            sess.run(None, {"x": frames(8)})
        except Exception as exc:
            errors.append(exc)

    t = threading.Thread(target=caller)
    t.start()
    while sess._pipeline is None and t.is_alive():
        threading.Event().wait(0.005)
    sess.close()
    t.join(20)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], hailo_ort.errors.HailoOrtError)
