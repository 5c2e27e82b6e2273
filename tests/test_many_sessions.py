"""Many InferenceSessions on one device (the emulator; HailoRT's shared VDevice through the fake
hailo_platform), and parity with plain onnxruntime on models with and without HailoOp nodes."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import onnx
import onnxruntime
import pytest
import runtime_models as rm
from conftest import shared_fixture
from test_hailort_device import fake_hp  # noqa: F401  (fixture: the fake hailo_platform)

import hailo_ort
from hailo_ort.errors import DeviceError
from hailo_ort.runtime.devices import hailort
from hailo_ort.zoo import get_example, synthetic_images

CPU = ["CPUExecutionProvider"]
EMULATOR = [("HailoExecutionProvider", {"device": "emulator"}), "CPUExecutionProvider"]
SHORTCUT = "hailo-fork/shortcut_example.onnx"


def _run_concurrently(jobs: list) -> list:
    """Run each callable in its own thread, all at once; their results in order."""
    results: list = [None] * len(jobs)
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs))

    def worker(i: int) -> None:
        try:
            start.wait(10)
            results[i] = jobs[i]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[0]
    return results


# ---- the emulator ---------------------------------------------------------------------------


def test_many_emulator_sessions_run_side_by_side_without_crosstalk() -> None:
    model, plain = rm.cnn()
    data = model.SerializeToString()
    sessions = [hailo_ort.InferenceSession(data, providers=EMULATOR) for _ in range(6)]
    assert all(
        s.get_providers() == ["HailoExecutionProvider", "CPUExecutionProvider"] for s in sessions
    )
    inputs = [rm.calib([1, 3, 8, 8], 7) * (0.5 + 0.1 * i) for i in range(6)]
    alone = hailo_ort.InferenceSession(data, providers=EMULATOR)
    expected = [alone.run(None, {"x": x}) for x in inputs]
    # every session runs every input, all sessions at once, several rounds
    jobs = [
        (lambda s=s, k=k: [s.run(None, {"x": inputs[(k + r) % 6]}) for r in range(6)])
        for k, s in enumerate(sessions)
    ]
    for k, rounds in enumerate(_run_concurrently(jobs)):
        for r, got in enumerate(rounds):
            for g, e in zip(got, expected[(k + r) % 6]):
                np.testing.assert_array_equal(g, e)
    # different inputs gave different device outputs: the data really flowed per session
    assert not np.array_equal(expected[0][1], expected[1][1])
    # the emulation is close to float for each of them
    for x, e in zip(inputs, expected):
        want = onnxruntime.InferenceSession(plain.SerializeToString(), providers=CPU).run(
            None, {"x": x}
        )
        assert 0 < np.abs(e[1] - want[1]).max() < 0.1 * np.abs(want[1]).max()
    # closing some sessions leaves the others working
    for s in sessions[:3]:
        s.close()
    for s in sessions[3:]:
        np.testing.assert_array_equal(s.run(None, {"x": inputs[0]})[1], expected[0][1])
        s.close()


# ---- HailoRT: one shared VDevice ------------------------------------------------------------


def _shortcut_feeds(count: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(5)
    return [{"x.1": rng.random((1, 3, 24, 16), dtype=np.float32) * 40} for _ in range(count)]


@pytest.fixture
def shortcut_path():
    return str(shared_fixture(SHORTCUT))


def _open(path: str, **options) -> hailo_ort.InferenceSession:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture HEF is outdated (HefWarning)
        return hailo_ort.InferenceSession(
            path, providers=[("HailoExecutionProvider", options), "CPUExecutionProvider"]
        )


def test_sessions_share_one_vdevice(fake_hp, shortcut_path) -> None:  # noqa: F811
    sessions = [_open(shortcut_path) for _ in range(4)]
    assert all(s.get_providers()[0] == "HailoExecutionProvider" for s in sessions)
    assert len(fake_hp.STATE.vdevices_created) == 1  # one VDevice for the process
    assert hailort.open_vdevices() == {(None, None, False): 4}
    assert fake_hp.STATE.configure_calls == 4  # each session configured its network group
    feeds = _shortcut_feeds(4)
    expected = [sessions[0].run(None, f)[0] for f in feeds]
    assert not np.array_equal(expected[0], expected[1])
    jobs = [
        (lambda s=s, k=k: [s.run(None, feeds[(k + r) % 4])[0] for r in range(5)])
        for k, s in enumerate(sessions)
    ]
    for k, rounds in enumerate(_run_concurrently(jobs)):
        for r, got in enumerate(rounds):
            np.testing.assert_array_equal(got, expected[(k + r) % 4])
    # a session's close drops its reference only; the others keep running
    sessions[0].close()
    sessions[1].close()
    assert hailort.open_vdevices() == {(None, None, False): 2}
    np.testing.assert_array_equal(sessions[2].run(None, feeds[3])[0], expected[3])
    sessions[2].close()
    sessions[3].close()
    assert hailort.open_vdevices() == {}
    assert fake_hp.STATE.live_vdevices == []


def test_sessions_with_another_group_id_on_a_busy_device(fake_hp, shortcut_path) -> None:  # noqa: F811
    first = _open(shortcut_path, group_id="A")
    same_group = _open(shortcut_path, group_id="A")
    assert hailort.open_vdevices() == {(None, "A", False): 2}
    assert len(fake_hp.STATE.vdevices_created) == 1
    feed = _shortcut_feeds(1)[0]
    np.testing.assert_array_equal(first.run(None, feed)[0], same_group.run(None, feed)[0])
    # another group cannot open the busy device: the session says so (not "no device found")
    for device in ("auto", "hailort"):
        with pytest.raises(DeviceError, match="in use by another process"):
            _open(shortcut_path, group_id="B", device=device)
    # a model with float fallback bodies runs on the CPU instead, and get_providers says so
    model, plain = rm.cnn()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        busy = hailo_ort.InferenceSession(
            model.SerializeToString(),
            providers=[("HailoExecutionProvider", {"group_id": "B"}), "CPUExecutionProvider"],
        )
    assert busy.get_providers() == CPU
    x = rm.calib([1, 3, 8, 8], 3)
    ref = onnxruntime.InferenceSession(plain.SerializeToString(), providers=CPU)
    np.testing.assert_allclose(busy.run(None, {"x": x})[0], ref.run(None, {"x": x})[0], atol=1e-6)
    for s in (first, same_group, busy):
        s.close()
    assert hailort.open_vdevices() == {}


def test_hailort_and_emulator_sessions_side_by_side(fake_hp, shortcut_path) -> None:  # noqa: F811
    hef_session = _open(shortcut_path)
    model, _ = rm.cnn()
    emulated = hailo_ort.InferenceSession(model.SerializeToString(), providers=EMULATOR)
    feed = _shortcut_feeds(1)[0]
    x = rm.calib([1, 3, 8, 8], 7)
    want_hef, want_emu = hef_session.run(None, feed)[0], emulated.run(None, {"x": x})
    got = _run_concurrently(
        [lambda: [hef_session.run(None, feed)[0] for _ in range(5)],
         lambda: [emulated.run(None, {"x": x}) for _ in range(5)]]
    )  # fmt: skip
    for g in got[0]:
        np.testing.assert_array_equal(g, want_hef)
    for g in got[1]:
        for a, b in zip(g, want_emu):
            np.testing.assert_array_equal(a, b)
    assert len(fake_hp.STATE.vdevices_created) == 1
    hef_session.close()
    emulated.close()
    assert hailort.open_vdevices() == {}


# ---- parity with plain onnxruntime ------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled_examples(tmp_path_factory) -> dict[str, tuple[str, str]]:
    """(float path, portable .hailo.onnx path) per example, compiled by emulation."""
    folder = tmp_path_factory.mktemp("parity")
    out = {}
    for name in ("resnet18", "yolov8n"):
        model = get_example(name)
        float_path = folder / f"{name}.onnx"
        onnx.save(model, str(float_path))
        calib = {model.graph.input[0].name: synthetic_images(16, [3, *_hw(model)], seed=1)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hailo_ort.compile(
                float_path, "hailo8l", calibration=calib, backend="emulate", cache=False
            )
        out[name] = (str(float_path), str(folder / f"{name}.hailo.onnx"))
    return out


def _hw(model: onnx.ModelProto) -> list[int]:
    return [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][2:]


def _feed(path: str, seed: int) -> dict[str, np.ndarray]:
    model = onnx.load(path)
    return {model.graph.input[0].name: synthetic_images(1, [3, *_hw(model)], seed=seed)}


def _same_metadata(ours: hailo_ort.InferenceSession, ref: onnxruntime.InferenceSession) -> None:
    assert [str(a) for a in ours.get_inputs()] == [str(a) for a in ref.get_inputs()]
    assert [str(a) for a in ours.get_outputs()] == [str(a) for a in ref.get_outputs()]


@pytest.mark.parametrize("name", ["resnet18", "yolov8n"])
def test_parity_without_hailoop(name, compiled_examples) -> None:
    float_path, _ = compiled_examples[name]
    ours = hailo_ort.InferenceSession(float_path)
    ref = onnxruntime.InferenceSession(float_path, providers=CPU)
    _same_metadata(ours, ref)
    assert ours.get_providers() == CPU
    feed = _feed(float_path, seed=4)
    for a, b in zip(ours.run(None, feed), ref.run(None, feed)):
        np.testing.assert_array_equal(a, b)
    out_name = ref.get_outputs()[0].name
    np.testing.assert_array_equal(ours.run([out_name], feed)[0], ref.run([out_name], feed)[0])


@pytest.mark.parametrize("name", ["resnet18", "yolov8n"])
def test_parity_with_hailoop(name, compiled_examples) -> None:
    float_path, hailo_path = compiled_examples[name]
    ref_float = onnxruntime.InferenceSession(float_path, providers=CPU)
    ref_portable = onnxruntime.InferenceSession(hailo_path, providers=CPU)
    cpu = hailo_ort.InferenceSession(hailo_path, providers=CPU)
    emulated = hailo_ort.InferenceSession(hailo_path, providers=EMULATOR)
    for sess in (cpu, emulated):
        _same_metadata(sess, ref_float)
    feed = _feed(float_path, seed=6)
    want = ref_float.run(None, feed)
    # on the CPU, the fallback bodies: as plain onnxruntime on the same file, and as float
    for a, b, c in zip(cpu.run(None, feed), ref_portable.run(None, feed), want):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5)
    # on the emulator: close to float, not equal; an output subset is the same values
    got = emulated.run(None, feed)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        cos = float(g.ravel() @ w.ravel() / (np.linalg.norm(g) * np.linalg.norm(w)))
        assert cos > 0.98 and np.abs(g - w).max() > 0
    first = ref_float.get_outputs()[0].name
    np.testing.assert_array_equal(emulated.run([first], feed)[0], got[0])
