"""Pipelined execution: stream / run_async order and results, overlap, batching, errors, threads."""

from __future__ import annotations

import threading
import time

import numpy as np
import onnxruntime
import pytest
from pipeline_models import compile_emulated, emulator, two_partition_model

import hailo_ort
from hailo_ort.errors import DeviceError, HailoOrtError
from hailo_ort.runtime.devices.emulator import EmulatedPartition


@pytest.fixture(scope="module")
def compiled() -> bytes:
    return compile_emulated(two_partition_model()).model.SerializeToString()


def feeds(n: int, seed: int = 3) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((1, 3, 20, 20)).astype(np.float32)} for _ in range(n)]


_EARLIER: set[threading.Thread] = set()


@pytest.fixture(autouse=True)
def _threads_before() -> None:
    """Threads of sessions from earlier tests (closed by the garbage collector) do not count."""
    _EARLIER.clear()
    _EARLIER.update(threading.enumerate())


def hailo_threads() -> list[threading.Thread]:
    """hailo-ort threads started during this test and still running."""
    return [
        t for t in threading.enumerate() if t.name.startswith("hailo-ort") and t not in _EARLIER
    ]


def pipeline_threads() -> list[threading.Thread]:
    """Pipeline stage threads (the emulator's device-queue threads live until session close)."""
    return [t for t in hailo_threads() if "emulator" not in t.name]


def assert_same(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_plan_has_two_device_steps(compiled: bytes) -> None:
    sess = emulator(compiled)
    assert len(sess.device_nodes) == 2
    sess.close()


def test_stream_equals_run_in_input_order(compiled: bytes) -> None:
    sess = emulator(compiled)
    inputs = feeds(12)
    want = [sess.run(None, f) for f in inputs]
    got = list(sess.stream(iter(inputs), max_in_flight=5))
    assert len(got) == len(inputs)
    for g, w in zip(got, want):
        assert_same(g, w)
    # a subset of outputs, by name
    only_z = list(sess.stream(inputs[:3], output_names=["z"]))
    for g, w in zip(only_z, want[:3]):
        assert_same(g, [w[1]])
    sess.close()


def test_stream_with_device_batches_equals_run(compiled: bytes) -> None:
    sess = emulator(compiled, batch_size=4, latency_ms=20)
    inputs = feeds(8, seed=5)
    want = [sess.run(None, f) for f in inputs]
    parts = [p for p in sess._device._loaded]  # type: ignore[union-attr]
    before = [p.batches_run for p in parts]
    got = list(sess.stream(inputs, max_in_flight=8))
    for g, w in zip(got, want):
        assert_same(g, w)
    # while one batch is on the device, the next requests queue up and share a batch
    used = [p.batches_run - b for p, b in zip(parts, before)]
    assert all(0 < u < len(inputs) for u in used), used
    sess.close()


def test_run_async_calls_back_each_request_with_its_user_data(compiled: bytes) -> None:
    sess = emulator(compiled)
    inputs = feeds(6, seed=9)
    want = [sess.run(None, f) for f in inputs]
    results: dict[int, tuple[list[np.ndarray], str]] = {}
    all_done = threading.Event()
    lock = threading.Lock()

    def callback(outputs, user_data, err):
        with lock:
            results[user_data] = (outputs, err)
            if len(results) == len(inputs):
                all_done.set()

    for i, f in enumerate(inputs):
        sess.run_async(None, f, callback, i)
    assert all_done.wait(20)
    for i, w in enumerate(want):
        outputs, err = results[i]
        assert err == ""
        assert_same(outputs, w)
    sess.close()


def test_run_async_bad_feed_raises_like_onnxruntime(compiled: bytes) -> None:
    sess = emulator(compiled)
    with pytest.raises(onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument):
        sess.run_async(None, {"x": np.zeros((1, 3, 20, 20), np.float64)}, lambda *a: None, 0)
    sess.close()


class _RecordingClock:
    """Stands in for the emulator module's ``time``: records each modelled-latency sleep."""

    def __init__(self) -> None:
        self.intervals: list[tuple[int, float, float]] = []
        self._lock = threading.Lock()

    monotonic = staticmethod(time.monotonic)

    def sleep(self, seconds: float) -> None:
        start = time.monotonic()
        time.sleep(seconds)
        with self._lock:
            self.intervals.append((threading.get_ident(), start, time.monotonic()))

    def overlapping_pairs(self) -> int:
        """Pairs of sleeps on different device workers that were under way at the same time."""
        found = 0
        for i, (a, s1, e1) in enumerate(self.intervals):
            for b, s2, e2 in self.intervals[i + 1 :]:
                if a != b and s1 < e2 and s2 < e1:
                    found += 1
        return found


def test_pipelining_overlaps_the_device_stages(
    compiled: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each partition has its own modelled latency: sequentially the two device stages never
    # work at the same time; pipelined, they work on different requests at once.
    from hailo_ort.runtime.devices import emulator as emulator_module

    clock = _RecordingClock()
    monkeypatch.setattr(emulator_module, "time", clock)
    sess = emulator(compiled, latency_ms=30)
    inputs = feeds(8, seed=1)
    want = [sess.run(None, f) for f in inputs]
    assert len(clock.intervals) == 2 * len(inputs)
    assert clock.overlapping_pairs() == 0
    clock.intervals.clear()
    out = list(sess.stream(inputs, max_in_flight=8))
    assert len(out) == len(inputs)
    for got, expected in zip(out, want):
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e)
    assert clock.overlapping_pairs() >= 1, clock.intervals
    sess.close()


def _fail_on_constant_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulated device fails any batch holding a constant frame (a test double)."""
    real = EmulatedPartition._run

    def run(self, inputs):
        for value in inputs.values():
            for frame in value:
                if frame.min() == frame.max():
                    raise DeviceError("injected device failure")
        return real(self, inputs)

    monkeypatch.setattr(EmulatedPartition, "_run", run)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_a_failing_request_does_not_affect_the_others(
    compiled: bytes, monkeypatch: pytest.MonkeyPatch, batch_size: int
) -> None:
    sess = emulator(compiled, fallback="error", batch_size=batch_size, latency_ms=5)
    inputs = feeds(7, seed=2)
    want = [sess.run(None, f) for f in inputs]
    _fail_on_constant_frames(monkeypatch)
    bad = {"x": np.ones((1, 3, 20, 20), np.float32)}
    wrong_dtype = {"x": np.ones((1, 3, 20, 20), np.float64)}
    mixed = [*inputs[:3], bad, *inputs[3:5], wrong_dtype, *inputs[5:]]
    got = list(sess.stream(mixed, errors="return", max_in_flight=6))
    assert len(got) == len(mixed)
    assert isinstance(got[3], DeviceError) and "injected" in str(got[3])
    assert isinstance(got[6], HailoOrtError)
    assert isinstance(got[6], onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument)
    good = [g for i, g in enumerate(got) if i not in (3, 6)]
    for g, w in zip(good, want):
        assert_same(g, w)
    # run_async: the error goes to that request's callback only
    seen: dict[int, str] = {}
    done = threading.Semaphore(0)

    def callback(outputs, user_data, err):
        seen[user_data] = err
        done.release()

    for i, f in enumerate([inputs[0], bad, inputs[1]]):
        sess.run_async(None, f, callback, i)
    for _ in range(3):
        assert done.acquire(timeout=20)
    assert seen[0] == "" and seen[2] == "" and "injected" in seen[1]
    sess.close()


def test_stream_raises_at_the_failed_request_and_stops(
    compiled: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    sess = emulator(compiled, fallback="error")
    _fail_on_constant_frames(monkeypatch)
    inputs = [*feeds(2), {"x": np.ones((1, 3, 20, 20), np.float32)}, *feeds(3)]
    it = sess.stream(inputs)
    assert len(next(it)) == 2 and len(next(it)) == 2
    with pytest.raises(DeviceError, match="injected"):
        next(it)
    assert not pipeline_threads()
    sess.close()


def test_device_failure_falls_back_to_cpu_inside_the_pipeline(
    compiled: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    sess = emulator(compiled, batch_size=2)
    _fail_on_constant_frames(monkeypatch)
    bad = {"x": np.ones((1, 3, 20, 20), np.float32)}
    got = list(sess.stream([bad, *feeds(3)]))
    assert len(got) == 4 and all(isinstance(g, list) for g in got)
    sess.close()


def test_no_thread_left_after_iterator_close_or_session_close(compiled: bytes) -> None:
    sess = emulator(compiled, latency_ms=5)
    it = sess.stream(feeds(20), max_in_flight=4)
    next(it)
    assert pipeline_threads()  # the stream's stage threads run
    it.close()
    assert not pipeline_threads()
    # an abandoned stream and pending run_async requests are stopped by session.close()
    it2 = sess.stream(feeds(20), max_in_flight=4)
    next(it2)
    done = threading.Semaphore(0)
    for f in feeds(3):
        sess.run_async(None, f, lambda *a: done.release(), None)
    sess.close()
    assert not hailo_threads(), hailo_threads()
    with pytest.raises(HailoOrtError):
        list(it2)
    for _ in range(3):  # every run_async request got its callback, result or error
        assert done.acquire(timeout=10)


def test_concurrent_streams_and_runs_from_several_threads(compiled: bytes) -> None:
    sess = emulator(compiled, batch_size=2)
    inputs = feeds(6, seed=4)
    want = [sess.run(None, f) for f in inputs]
    failures: list[str] = []

    def streamer() -> None:
        for g, w in zip(sess.stream(inputs, max_in_flight=3), want):
            if not all(np.array_equal(a, b) for a, b in zip(g, w)):
                failures.append("stream")

    def runner() -> None:
        for f, w in zip(inputs, want):
            if not all(np.array_equal(a, b) for a, b in zip(sess.run(None, f), w)):
                failures.append("run")

    threads = [threading.Thread(target=t) for t in (streamer, streamer, runner)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not failures
    sess.close()
    assert not hailo_threads()


def test_stream_on_a_model_without_hailo_ops() -> None:
    model = two_partition_model()
    sess = hailo_ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = feeds(9, seed=6)
    want = [sess.run(None, f) for f in inputs]
    got = list(sess.stream(inputs, max_in_flight=4))
    for g, w in zip(got, want):
        assert_same(g, w)
    bad = list(sess.stream([{"x": np.zeros((2, 2), np.float32)}], errors="return"))
    assert isinstance(bad[0], HailoOrtError)
    assert not pipeline_threads()


def test_stage_timing_is_off_by_default_and_names_every_stage(compiled: bytes) -> None:
    sess = emulator(compiled, latency_ms=10)
    sess.run(None, feeds(1)[0])
    assert sess.stage_times() == {}
    sess.enable_stage_timing()
    for f in feeds(3):
        sess.run(None, f)
    stats = sess.stage_times(reset=True)
    names = set(stats)
    for node in sess.device_nodes:
        assert {f"{node}:to_device", f"{node}:device", f"{node}:from_device"} <= names
    assert {"cpu0", "cpu1", "cpu2"} <= names
    assert all(s.count == 3 for s in stats.values())
    device = [s for n, s in stats.items() if n.endswith(":device")]
    assert all(s.mean_ms >= 10 for s in device)  # the modelled latency is inside
    assert sess.stage_times() == {}
    sess.enable_stage_timing(False)
    sess.run(None, feeds(1)[0])
    assert sess.stage_times() == {}
    sess.close()


def test_stream_arguments_are_checked(compiled: bytes) -> None:
    sess = emulator(compiled)
    with pytest.raises(HailoOrtError):
        sess.stream(feeds(1), errors="ignore")
    with pytest.raises(HailoOrtError):
        sess.stream(feeds(1), max_in_flight=0)
    sess.close()
    with pytest.raises(HailoOrtError):
        sess.stream(feeds(1))


def test_a_silent_device_times_out_that_request_only(
    compiled: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = EmulatedPartition.infer_async

    def infer_async(self, inputs, callback, timeout_ms):
        if any(frame.min() == frame.max() for v in inputs.values() for frame in v):
            return  # a device that never answers (a test double)
        real(self, inputs, callback, timeout_ms)

    sess = emulator(compiled, fallback="error", timeout_ms=100)
    inputs = feeds(4, seed=8)
    want = [sess.run(None, f) for f in inputs]
    monkeypatch.setattr(EmulatedPartition, "infer_async", infer_async)
    mixed = [inputs[0], {"x": np.ones((1, 3, 20, 20), np.float32)}, *inputs[1:]]
    start = time.monotonic()
    got = list(sess.stream(mixed, errors="return"))
    assert time.monotonic() - start < 10
    assert isinstance(got[1], DeviceError) and "did not answer" in str(got[1])
    for g, w in zip([got[0], *got[2:]], want):
        assert_same(g, w)
    sess.close()
    assert not hailo_threads()


def test_a_partition_that_cannot_load_streams_through_its_float_body(
    compiled: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hailo_ort.runtime.devices.emulator import EmulatorDevice

    real = EmulatorDevice.load

    def load(self, part, batch_size=1):
        if part.partition.index == 1:
            raise DeviceError("cannot load (test double)")
        return real(self, part, batch_size)

    monkeypatch.setattr(EmulatorDevice, "load", load)
    sess = emulator(compiled, batch_size=4, latency_ms=10)
    assert len(sess.device_nodes) == 1
    inputs = feeds(6, seed=12)
    want = [sess.run(None, f) for f in inputs]
    for g, w in zip(sess.stream(inputs), want):
        assert_same(g, w)
    sess.close()
