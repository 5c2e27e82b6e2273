"""The HailoRT device (hailo_ort/runtime/devices/hailort.py) against a fake hailo_platform.

The fake (tests/fake_hailo_platform) mirrors HailoRT's Python API; its outputs are a CRC-seeded
fill of each frame's input bytes (``fake_output``), so the tests check that the right data
reached the right frame. A last test runs on a real device when one is present.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _threads import run_concurrently
from conftest import shared_fixture

import hailo_ort.hef
from hailo_ort.errors import ArchError, DeviceError, HailoOrtError
from hailo_ort.hailoop.types import CompiledPartition, StreamSpec
from hailo_ort.partition.types import Partition
from hailo_ort.runtime.devices import hailort

FAKE_INIT = Path(__file__).parent / "fake_hailo_platform" / "hailo_platform" / "__init__.py"


def _load_fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    spec = importlib.util.spec_from_file_location("hailo_platform", FAKE_INIT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "hailo_platform", module)
    spec.loader.exec_module(module)
    module.fake_reset()
    return module


@pytest.fixture
def fake_hp(monkeypatch: pytest.MonkeyPatch):
    """The fake hailo_platform as ``hailo_platform``; checks that every VDevice was released."""
    module = _load_fake(monkeypatch)
    yield module
    leftover = hailort.open_vdevices()
    live = list(module.STATE.live_vdevices)
    with hailort._REGISTRY_LOCK:
        hailort._REGISTRY.clear()
    assert not leftover, f"VDevices left open: {leftover}"
    assert not live, "a fake VDevice was not released"


# ---------------------------------------------------------------------------------------------
# helpers


def _spec(vstream: str, frame: tuple[int, ...], order: str = "NHWC", dtype: str = "uint8"):
    tensor = vstream.split("/")[-1]
    if order == "NC":
        return StreamSpec(
            vstream, tensor, [1, frame[-1]], "float32", [1, frame[-1]], "NC", dtype, host_order="NC"
        )
    h, w, c = frame
    return StreamSpec(vstream, tensor, [1, c, h, w], "float32", [1, h, w, c], order, dtype)


def _compiled(hef: bytes, inputs, outputs, arch: str = "hailo8", index: int = 0):
    partition = Partition(index, [], [], [], [], [])
    return CompiledPartition(partition, arch, "dfc", inputs, outputs, hef=hef)


def _fork_hef(name: str) -> bytes:
    import onnx

    model = onnx.load(str(shared_fixture(f"hailo-fork/{name}.onnx")))
    node = next(n for n in model.graph.node if n.op_type == "HailoOp")
    return next(a.s for a in node.attribute if a.name == "hef")


def shortcut_partition(index: int = 0) -> CompiledPartition:
    return _compiled(
        _fork_hef("shortcut_example"),
        [_spec("shortcut_rubinator/input_layer", (24, 16, 3))],
        [_spec("shortcut_rubinator/shortcut1", (24, 16, 3))],
        index=index,
    )


def multiple_outputs_partition() -> CompiledPartition:
    return _compiled(
        _fork_hef("multiple_outputs"),
        [_spec("conv_2_outputs/input_layer", (4, 4, 3))],
        [_spec("conv_2_outputs/conv1", (4, 4, 8)), _spec("conv_2_outputs/shortcut1", (4, 4, 3))],
    )


def arcface_partition() -> CompiledPartition:
    hef = shared_fixture("hef/arcface_mobilefacenet_hailo8_v1.hef").read_bytes()
    return _compiled(
        hef,
        [_spec("arcface_mobilefacenet/input_layer1", (112, 112, 3))],
        [_spec("arcface_mobilefacenet/fc1", (512,), order="NC")],
    )


def _inputs(part, frames: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        s.vstream: rng.integers(0, 256, size=[frames, *s.device_shape[1:]], dtype=np.uint8)
        for s in part.inputs
    }


def _expected(fake, part, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    frames = next(iter(inputs.values())).shape[0]
    out = {}
    for s in part.outputs:
        frame_shape = tuple(s.device_shape[1:])
        out[s.vstream] = np.stack(
            [
                fake.fake_output(
                    s.vstream,
                    {k: v[i] for k, v in inputs.items()},
                    frame_shape,
                    np.dtype(s.device_dtype),
                )
                for i in range(frames)
            ]
        )
    return out


def _assert_outputs(fake, part, inputs, outputs) -> None:
    expected = _expected(fake, part, inputs)
    assert sorted(outputs) == sorted(expected)
    for name, value in expected.items():
        assert outputs[name].dtype == value.dtype
        np.testing.assert_array_equal(outputs[name], value)


# ---------------------------------------------------------------------------------------------
# hailo_platform missing, no device, options


def test_missing_hailo_platform_is_a_clear_device_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "hailo_platform", None)  # import raises ImportError
    with pytest.raises(
        DeviceError,
        match=r"hailo_platform is not installed: install HailoRT's "
        r"Python wheel \(hailort\)",
    ):
        hailort.open_device()
    assert hailort.available() is False


def test_no_device_found(fake_hp):
    fake_hp.STATE.device_ids = []
    with pytest.raises(DeviceError, match="no Hailo device found"):
        hailort.open_device()
    assert hailort.available() is False


def test_unknown_device_id_lists_the_devices(fake_hp):
    fake_hp.STATE.device_ids = ["0000:01:00.0", "0000:02:00.0"]
    with pytest.raises(DeviceError, match=r"'0000:09:00.0' not found; devices: 0000:01:00.0"):
        hailort.open_device("0000:09:00.0")
    with hailort.open_device("02:00.0") as device:  # the PCIe domain is optional
        assert device.device_ids == ["0000:02:00.0"]
    assert fake_hp.STATE.vdevices_created[-1]["device_ids"] == ["02:00.0"]


def test_only_round_robin_scheduling(fake_hp):
    with pytest.raises(DeviceError, match="only 'round_robin'"):
        hailort.open_device(scheduling="fifo")


def test_available_with_a_device(fake_hp):
    assert hailort.available() is True


def test_vdevice_params_round_robin_group_and_service(fake_hp):
    with hailort.open_device(group_id="SHARED", multi_process_service=True) as device:
        assert device.kind == "hailort" and device.arch == "HAILO8"
        assert device.api == "async"
    params = fake_hp.STATE.vdevices_created[-1]
    assert params["scheduling_algorithm"] == fake_hp.HailoSchedulingAlgorithm.ROUND_ROBIN
    assert params["group_id"] == "SHARED"
    assert params["multi_process_service"] is True


def test_legacy_vdevice_params(fake_hp):
    """HailoRT 4.15-4.17: scheduler off by default, no device_ids param, read-only service flag."""
    fake_hp.fake_set_version("4.17.0")
    fake_hp.STATE.device_ids = ["0000:01:00.0", "0000:02:00.0"]
    with hailort.open_device("0000:02:00.0", group_id="G", multi_process_service=True) as device:
        assert device.api == "vstreams" and device.device_ids == ["0000:02:00.0"]
    params = fake_hp.STATE.vdevices_created[-1]
    assert params["scheduling_algorithm"] == fake_hp.HailoSchedulingAlgorithm.ROUND_ROBIN
    assert params["group_id"] == "G" and params["device_ids"] == ["0000:02:00.0"]


def test_device_arch_is_read_from_board_info(fake_hp):
    fake_hp.STATE.arch = "HAILO8_A0"  # early silicon reports this name: same family
    with hailort.open_device() as device:
        assert device.arch == "HAILO8"
    fake_hp.STATE.arch = "HAILO8L"
    with hailort.open_device() as device:
        assert device.arch == "HAILO8L"


def test_fork_provider_detection(monkeypatch):
    import onnxruntime

    assert hailort.fork_provider_available() == (
        "HailoExecutionProvider" in onnxruntime.get_available_providers()
    )
    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["HailoExecutionProvider", "CPUExecutionProvider"],
    )
    assert hailort.fork_provider_available() is True


# ---------------------------------------------------------------------------------------------
# async InferModel API


def test_async_load_and_run_shortcut(fake_hp):
    part = shortcut_partition()
    with hailort.open_device() as device:
        loaded = device.load(part, batch_size=2)
        assert loaded.batch_size == 2
        inputs = _inputs(part, frames=2)
        outputs = loaded.infer(inputs, timeout_ms=2000)
        _assert_outputs(fake_hp, part, inputs, outputs)
        # different frames gave different outputs: the data really flowed per frame
        out = outputs["shortcut_rubinator/shortcut1"]
        assert not np.array_equal(out[0], out[1])
        first_pointer = out.ctypes.data
        assert first_pointer % 4096 == 0  # page-aligned output buffer
        # while the caller holds the first results, they are not reused and stay intact
        inputs2 = _inputs(part, frames=2, seed=1)
        outputs2 = loaded.infer(inputs2, timeout_ms=2000)
        _assert_outputs(fake_hp, part, inputs2, outputs2)
        _assert_outputs(fake_hp, part, inputs, outputs)
        assert outputs2["shortcut_rubinator/shortcut1"].ctypes.data != first_pointer
        # a view keeps its buffer alive too
        view = outputs["shortcut_rubinator/shortcut1"][1:]
        del out, outputs
        outputs3 = loaded.infer(_inputs(part, frames=2, seed=2), timeout_ms=2000)
        assert outputs3["shortcut_rubinator/shortcut1"].ctypes.data != first_pointer
        # once dropped, the buffers are reused
        del view, outputs3
        outputs4 = loaded.infer(inputs, timeout_ms=2000)
        _assert_outputs(fake_hp, part, inputs, outputs4)
        assert outputs4["shortcut_rubinator/shortcut1"].ctypes.data == first_pointer
        loaded.reuse_outputs = False  # no pool: a fresh buffer every call
        del outputs4
        outputs5 = loaded.infer(inputs, timeout_ms=2000)
        assert outputs5["shortcut_rubinator/shortcut1"].ctypes.data != first_pointer
        assert outputs5["shortcut_rubinator/shortcut1"].ctypes.data % 4096 == 0
        loaded.close()
        loaded.close()  # idempotent
    formats = fake_hp.STATE.formats_set
    assert ("shortcut_rubinator/input_layer", "type", int(fake_hp.FormatType.UINT8)) in formats
    assert ("shortcut_rubinator/input_layer", "order", int(fake_hp.FormatOrder.NHWC)) in formats
    assert ("shortcut_rubinator/shortcut1", "type", int(fake_hp.FormatType.UINT8)) in formats
    assert ("shortcut_rubinator/shortcut1", "order", int(fake_hp.FormatOrder.NHWC)) in formats
    assert fake_hp.STATE.shutdowns == 1


def test_async_multiple_outputs_and_nc_output(fake_hp):
    with hailort.open_device() as device:
        for part in (multiple_outputs_partition(), arcface_partition()):
            loaded = device.load(part)
            inputs = _inputs(part, frames=3)
            _assert_outputs(fake_hp, part, inputs, loaded.infer(inputs, timeout_ms=2000))
    assert ("arcface_mobilefacenet/fc1", "order", int(fake_hp.FormatOrder.NC)) in (
        fake_hp.STATE.formats_set
    )


def test_batch_larger_than_the_async_queue_is_split(fake_hp):
    fake_hp.STATE.queue_size = 2
    part = shortcut_partition()
    with hailort.open_device() as device:
        loaded = device.load(part)
        inputs = _inputs(part, frames=5)
        _assert_outputs(fake_hp, part, inputs, loaded.infer(inputs, timeout_ms=2000))
    assert fake_hp.STATE.jobs_started == 3  # 2 + 2 + 1 frames


def test_uint16_and_nms_outputs(fake_hp):
    S = fake_hp.FakeStream
    meta = fake_hp.FakeHefMeta(
        "HAILO8",
        "det",
        [S("det/input_layer1", [8, 8, 3], type="UINT16")],
        [
            S("det/conv5", [8, 8, 4], type="UINT16"),
            S(
                "det/nms",
                [0],
                order="HAILO_NMS_BY_CLASS",
                type="FLOAT32",
                nms_classes=3,
                nms_max_bboxes=4,
            ),
        ],
    )
    part = _compiled(
        fake_hp.make_fake_hef(meta),
        [_spec("det/input_layer1", (8, 8, 3), dtype="uint16")],
        [
            _spec("det/conv5", (8, 8, 4), dtype="uint16"),
            StreamSpec("det/nms", "boxes", [1, 63], "float32", [], "NMS", "float32"),
        ],
    )
    inputs = {"det/input_layer1": np.arange(2 * 8 * 8 * 3, dtype=np.uint16).reshape(2, 8, 8, 3)}
    with hailort.open_device() as device:
        loaded = device.load(part)
        assert loaded.nms_outputs == ["det/nms"]
        outputs = loaded.infer(inputs, timeout_ms=2000)
    assert outputs["det/conv5"].dtype == np.uint16
    frame0 = {"det/input_layer1": inputs["det/input_layer1"][0]}
    np.testing.assert_array_equal(
        outputs["det/conv5"][0], fake_hp.fake_output("det/conv5", frame0, (8, 8, 4), np.uint16)
    )
    nms = outputs["det/nms"]
    assert nms.dtype == np.float32 and nms.shape == (2, 3 * (1 + 5 * 4))
    # classes packed back to back: class 0 has 1 box (y_min, x_min, y_max, x_max, score),
    # then the counts of classes 1 and 2 (0 boxes each)
    np.testing.assert_allclose(nms[0, :5], [1.0, 0.1, 0.2, 0.6, 0.7])
    assert nms[0, 6] == 0.0 and nms[0, 7] == 0.0
    for i in range(2):
        frame = {"det/input_layer1": inputs["det/input_layer1"][i]}
        np.testing.assert_array_equal(
            nms[i], fake_hp.fake_output("det/nms", frame, (63,), np.float32)
        )
    assert nms[0, 5] != nms[1, 5]  # the score follows each frame's own input
    formats = fake_hp.STATE.formats_set
    assert ("det/input_layer1", "type", int(fake_hp.FormatType.UINT16)) in formats
    assert ("det/nms", "type", int(fake_hp.FormatType.FLOAT32)) in formats
    assert ("det/nms", "order", int(fake_hp.FormatOrder.HAILO_NMS_BY_CLASS)) in formats


# ---------------------------------------------------------------------------------------------
# legacy InferVStreams API


def test_legacy_vstreams_path(fake_hp):
    fake_hp.fake_set_version("4.16.0")
    with hailort.open_device() as device:
        assert device.api == "vstreams"
        for part in (shortcut_partition(), multiple_outputs_partition(), arcface_partition()):
            loaded = device.load(part, batch_size=2)
            inputs = _inputs(part, frames=2)
            _assert_outputs(fake_hp, part, inputs, loaded.infer(inputs, timeout_ms=2000))
    calls = fake_hp.STATE.vstream_params_calls
    assert calls and all(call["quantized"] is None for call in calls)  # never quantized=
    assert fake_hp.STATE.frames_run == 6


def test_legacy_refuses_nms_outputs(fake_hp):
    fake_hp.fake_set_version("4.17.0")
    S = fake_hp.FakeStream
    meta = fake_hp.FakeHefMeta(
        "HAILO8",
        "det",
        [S("det/in", [4, 4, 3])],
        [S("det/nms", [0], order="HAILO_NMS_BY_CLASS", nms_classes=2, nms_max_bboxes=1)],
    )
    part = _compiled(
        fake_hp.make_fake_hef(meta),
        [_spec("det/in", (4, 4, 3))],
        [StreamSpec("det/nms", "b", [1, 12], "float32", [], "NMS", "float32")],
    )
    with hailort.open_device() as device, pytest.raises(DeviceError, match="NMS outputs need"):
        device.load(part)


@pytest.mark.parametrize("version", ["4.16.0", "4.20.0"])
def test_timeout_raises_without_hanging_then_recovers(fake_hp, version):
    fake_hp.fake_set_version(version)
    fake_hp.STATE.hang_jobs = {1}
    part = shortcut_partition()
    with hailort.open_device() as device:
        loaded = device.load(part)
        inputs = _inputs(part)
        start = time.monotonic()
        with pytest.raises(
            DeviceError,
            match=r"partition 0 \(HEF network group "
            r"'shortcut_rubinator'\): inference timed out after 150 ms "
            r"\(HAILO_TIMEOUT\)",
        ):
            loaded.infer(inputs, timeout_ms=150)
        assert time.monotonic() - start < 2.0
        _assert_outputs(fake_hp, part, inputs, loaded.infer(inputs, timeout_ms=2000))


@pytest.mark.parametrize("version", ["4.16.0", "4.20.0"])
def test_failed_job_names_the_status_and_the_partition_stays_usable(fake_hp, version):
    fake_hp.fake_set_version(version)
    fake_hp.STATE.fail_jobs = {1}
    part = shortcut_partition(index=3)
    with hailort.open_device() as device:
        loaded = device.load(part)
        inputs = _inputs(part)
        with pytest.raises(
            DeviceError,
            match=r"partition 3 .*inference failed "
            r"\(HAILO_INTERNAL_FAILURE\)",
        ):
            loaded.infer(inputs, timeout_ms=2000)
        for seed in range(3):
            inputs = _inputs(part, seed=seed)
            _assert_outputs(fake_hp, part, inputs, loaded.infer(inputs, timeout_ms=2000))


def test_configure_failure_then_load_again(fake_hp):
    fake_hp.STATE.configure_failures = 1
    part = shortcut_partition()
    with hailort.open_device() as device:
        with pytest.raises(
            DeviceError,
            match=r"configuring the HEF on the device failed "
            r"\(HAILO_INTERNAL_FAILURE\)",
        ):
            device.load(part)
        loaded = device.load(part)
        inputs = _inputs(part)
        _assert_outputs(fake_hp, part, inputs, loaded.infer(inputs, timeout_ms=2000))


def test_wait_for_async_ready_timeout(fake_hp):
    fake_hp.STATE.queue_size = 1
    fake_hp.STATE.hang_jobs = {1}
    part = shortcut_partition()
    with hailort.open_device() as device:
        loaded = device.load(part)
        errors = []
        loaded.infer_async(_inputs(part, frames=1), lambda o, e: errors.append(e), timeout_ms=5000)
        # The queue is full (the first job hangs): the next call cannot even be queued.
        other = _infer_in_other_thread(loaded, _inputs(part, frames=1), timeout_ms=150)
        assert isinstance(other, DeviceError)
        assert "wait_for_async_ready" in str(other) and "HAILO_TIMEOUT" in str(other)
        # back-pressure alone does not reset the configuration (the first job is still pending)
        assert fake_hp.STATE.shutdowns == 0 and errors == []
    assert len(errors) == 1 and isinstance(errors[0], DeviceError)  # closed → aborted


def _infer_in_other_thread(loaded, inputs, timeout_ms):
    box: dict[str, Any] = {}

    def run():
        try:
            box["out"] = loaded.infer(inputs, timeout_ms=timeout_ms)
        except Exception as exc:
            box["err"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(5.0)
    assert not thread.is_alive(), "infer hung"
    return box.get("err")


# ---------------------------------------------------------------------------------------------
# async callbacks


def test_infer_async_callbacks_exactly_once_with_a_fault(fake_hp):
    fake_hp.STATE.fail_jobs = {3}
    part = shortcut_partition()
    calls: dict[int, list[Any]] = {}
    lock = threading.Lock()
    all_done = threading.Event()
    n = 20

    with hailort.open_device() as device:
        loaded = device.load(part)
        requests = [_inputs(part, frames=1, seed=i) for i in range(n)]

        def make_callback(i):
            def callback(outputs, error):
                ok = None
                if error is None:  # buffers are valid during the callback: check them here
                    expected = _expected(fake_hp, part, requests[i])
                    ok = all(np.array_equal(outputs[k], v) for k, v in expected.items())
                with lock:
                    calls.setdefault(i, []).append(error if error is not None else ok)
                    if len(calls) == n:
                        all_done.set()

            return callback

        for i in range(n):
            loaded.infer_async(requests[i], make_callback(i), timeout_ms=3000)
        assert all_done.wait(10.0)
        time.sleep(0.05)  # a second (wrong) call would show up here
    assert all(len(v) == 1 for v in calls.values())
    results = [v[0] for _, v in sorted(calls.items())]
    assert isinstance(results[2], DeviceError) and "HAILO_INTERNAL_FAILURE" in str(results[2])
    assert all(r is True or isinstance(r, DeviceError) for r in results)
    assert results[-1] is True  # the partition recovered
    assert sum(r is True for r in results) >= n - 5


def test_infer_async_timeout_calls_back_once(fake_hp):
    fake_hp.STATE.hang_jobs = {1}
    part = shortcut_partition()
    got = []
    done = threading.Event()
    with hailort.open_device() as device:
        loaded = device.load(part)

        def callback(outputs, error):
            got.append((outputs, error))
            done.set()

        start = time.monotonic()
        loaded.infer_async(_inputs(part), callback, timeout_ms=100)
        assert done.wait(3.0)
        assert time.monotonic() - start < 2.0
        inputs = _inputs(part, seed=5)
        _assert_outputs(fake_hp, part, inputs, loaded.infer(inputs, timeout_ms=2000))
    time.sleep(0.05)
    assert len(got) == 1
    assert got[0][0] is None and "timed out after 100 ms" in str(got[0][1])


def test_infer_async_results_kept_by_the_caller_stay_intact(fake_hp):
    """A caller may keep async outputs after its callback returned (e.g. to concatenate)."""
    part = shortcut_partition()
    kept: dict[int, dict[str, np.ndarray]] = {}
    done = threading.Semaphore(0)
    with hailort.open_device() as device:
        loaded = device.load(part)
        requests = [_inputs(part, frames=1, seed=i) for i in range(12)]
        for i, inputs in enumerate(requests):

            def callback(outputs, error, i=i):
                assert error is None
                kept[i] = outputs
                done.release()

            loaded.infer_async(inputs, callback, timeout_ms=3000)
            if i % 3 == 2:  # let some complete before the next ones start
                for _ in range(3):
                    assert done.acquire(timeout=5.0)
        for i, inputs in enumerate(requests):
            _assert_outputs(fake_hp, part, inputs, kept[i])
        pointers = {v["shortcut_rubinator/shortcut1"].ctypes.data for v in kept.values()}
        assert len(pointers) == 12  # no buffer was handed out twice


def test_infer_async_bad_input_goes_to_the_callback(fake_hp):
    part = shortcut_partition()
    got = []
    with hailort.open_device() as device:
        loaded = device.load(part)
        bad = {"shortcut_rubinator/input_layer": np.zeros((1, 24, 16, 3), np.float32)}
        loaded.infer_async(bad, lambda o, e: got.append(e), timeout_ms=1000)
    assert len(got) == 1 and isinstance(got[0], DeviceError) and "quantize" in str(got[0])


# ---------------------------------------------------------------------------------------------
# input checks, HEF problems


def test_input_checks(fake_hp):
    part = shortcut_partition()
    with hailort.open_device() as device:
        loaded = device.load(part)
        name = "shortcut_rubinator/input_layer"
        with pytest.raises(DeviceError, match="is float32, the device takes uint8"):
            loaded.infer({name: np.zeros((1, 24, 16, 3), np.float32)}, timeout_ms=1000)
        with pytest.raises(
            DeviceError, match=r"shape \[1, 3, 24, 16\], expected \[batch, 24, 16, 3\]"
        ):
            loaded.infer({name: np.zeros((1, 3, 24, 16), np.uint8)}, timeout_ms=1000)
        with pytest.raises(DeviceError, match="missing"):
            loaded.infer({}, timeout_ms=1000)
        with pytest.raises(DeviceError, match="timeout_ms must be a positive"):
            loaded.infer(_inputs(part), timeout_ms=0)
        # a non-contiguous view is accepted (made contiguous for HailoRT)
        big = np.zeros((2, 24, 16, 6), np.uint8)
        big[..., :3] = _inputs(part)[name]
        view = big[..., :3]
        outputs = loaded.infer({name: view}, timeout_ms=1000)
        _assert_outputs(fake_hp, part, {name: np.ascontiguousarray(view)}, outputs)
        loaded.close()
        with pytest.raises(DeviceError, match="closed"):
            loaded.infer(_inputs(part), timeout_ms=1000)


def test_emulation_partition_and_vstream_mismatch(fake_hp):
    part = shortcut_partition()
    emulated = CompiledPartition(
        part.partition, "hailo8", "emulate", part.inputs, part.outputs, emulation=b"onnx"
    )
    wrong = shortcut_partition()
    wrong.outputs[0].vstream = "shortcut_rubinator/other"
    wrong_shape = shortcut_partition()
    wrong_shape.inputs[0].device_shape = [1, 16, 24, 3]
    with hailort.open_device() as device:
        with pytest.raises(DeviceError, match=r"has no HEF .*emulator"):
            device.load(emulated)
        with pytest.raises(
            DeviceError, match=r"HEF's outputs are \['shortcut_rubinator/shortcut1'\]"
        ):
            device.load(wrong)
        with pytest.raises(
            DeviceError,
            match=r"frame shape \[24, 16, 3\] but the model expects "
            r"\[16, 24, 3\]",
        ):
            device.load(wrong_shape)


def test_outdated_hef_is_explained(fake_hp):
    fake_hp.fake_set_version("4.21.0")
    with hailort.open_device() as device:
        with pytest.raises(DeviceError) as info:
            device.load(shortcut_partition())
    message = str(info.value)
    assert "partition 0 (HEF network group 'shortcut_rubinator')" in message
    assert "HAILO_HEF_NOT_SUPPORTED" in message and "outdated" in message
    assert "PERIPH_CALCULATION_IN_HAILORT" in message
    with hailort.open_device() as device:  # a current HEF loads on the same HailoRT
        device.load(arcface_partition())


def test_invalid_hef_bytes(fake_hp):
    part = shortcut_partition()
    part.hef = b"not a hef at all"
    with hailort.open_device() as device, pytest.raises(DeviceError, match="HAILO_INVALID_HEF"):
        device.load(part)


# ---------------------------------------------------------------------------------------------
# architecture checks


def test_arch_refused_before_loading(fake_hp, monkeypatch):
    """Without our HEF reader's answer the check uses CompiledPartition.arch."""
    monkeypatch.setattr(hailort, "_hef_facts", lambda hef: (None, []))
    fake_hp.STATE.arch = "HAILO8L"
    part = shortcut_partition()
    part.arch = "hailo8"
    with hailort.open_device() as device:
        with pytest.raises(DeviceError) as info:
            device.load(part)
    assert isinstance(info.value, ArchError) and isinstance(info.value, HailoOrtError)
    assert str(info.value) == (
        "partition 0: HEF built for HAILO8, this device is HAILO8L: recompile with --arch hailo8l"
    )
    assert fake_hp.STATE.configure_calls == 0  # refused before HailoRT was asked


def test_arch_refused_by_hailort_is_explained(fake_hp, monkeypatch):
    """When we cannot tell the HEF's arch, HailoRT's HEF_NOT_COMPATIBLE is mapped."""
    monkeypatch.setattr(hailort, "_hef_facts", lambda hef: (None, []))
    fake_hp.STATE.arch = "HAILO8L"
    part = shortcut_partition()
    part.arch = ""
    with hailort.open_device() as device, pytest.raises(hailort.HefIncompatibleError) as info:
        device.load(part)
    assert "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE" in str(info.value)
    assert "HAILO8L" in str(info.value)


def test_hailo8_device_runs_hailo8l_hef(fake_hp):
    S = fake_hp.FakeStream
    meta = fake_hp.FakeHefMeta("HAILO8L", "n", [S("n/in", [2, 2, 1])], [S("n/out", [2, 2, 1])])
    part = _compiled(
        fake_hp.make_fake_hef(meta),
        [_spec("n/in", (2, 2, 1))],
        [_spec("n/out", (2, 2, 1))],
        arch="hailo8l",
    )
    with hailort.open_device() as device:
        inputs = _inputs(part)
        _assert_outputs(fake_hp, part, inputs, device.load(part).infer(inputs, timeout_ms=1000))
    fake_hp.STATE.arch = "HAILO8L"
    with hailort.open_device() as device:  # and a Hailo-8L device too
        device.load(part)


def test_arch_from_the_hef_reader(fake_hp):
    """With hailo_ort.hef.read, the HEF's own arch decides."""
    hef = shared_fixture("hef/scrfd_2.5g_hailo10h_v3.hef").read_bytes()
    part = _compiled(hef, [_spec("scrfd_2_5g/input_layer1", (640, 640, 3))], [], arch="hailo8")
    with hailort.open_device() as device, pytest.raises(hailort.HefIncompatibleError) as info:
        device.load(part)
    assert re.search(
        r"HEF built for HAILO(15H|1XH|10H), this device is HAILO8: recompile with "
        r"--arch hailo8$",
        str(info.value),
    )
    fake_hp.STATE.arch = "HAILO8L"
    with (
        hailort.open_device() as device,
        pytest.raises(ArchError, match="HEF built for HAILO8P, this device is HAILO8L"),
    ):
        device.load(shortcut_partition())


@pytest.mark.parametrize(
    "relpath, device_arch",
    [
        ("hailo-fork/shortcut_example.onnx", "HAILO8"),
        ("hailo-fork/multiple_outputs.onnx", "HAILO8"),
        ("hef/arcface_mobilefacenet_hailo8_v1.hef", "HAILO8"),
        ("hef/scrfd_2.5g_hailo10h_v3.hef", "HAILO10H"),
    ],
)
def test_every_fixture_hef_loads_and_runs_with_the_reader(fake_hp, relpath, device_arch):
    """Stream specs from hailo_ort.hef.read, as the session would build them."""
    if relpath.endswith(".onnx"):
        hef = _fork_hef(Path(relpath).stem)
    else:
        hef = shared_fixture(relpath).read_bytes()
    group = hailo_ort.hef.read(hef).network_groups[0]

    def spec(v):
        h, w, c = v.shape
        order = v.host_format_order
        frame = (c,) if order == "NC" else (h, w, c)
        return _spec(v.name, frame, order=order, dtype=v.dtype)

    part = _compiled(hef, [spec(v) for v in group.inputs], [spec(v) for v in group.outputs])
    fake_hp.STATE.arch = device_arch
    with hailort.open_device() as device:
        loaded = device.load(part)
        inputs = _inputs(part, frames=1)
        _assert_outputs(fake_hp, part, inputs, loaded.infer(inputs, timeout_ms=5000))


# ---------------------------------------------------------------------------------------------
# sharing the VDevice


def test_shared_vdevice_reference_counting(fake_hp):
    parts = [shortcut_partition(i) for i in range(3)]
    first = hailort.open_device()
    second = hailort.open_device()
    third = hailort.open_device()
    assert len(fake_hp.STATE.vdevices_created) == 1
    assert hailort.open_vdevices() == {(None, None, False): 3}
    loaded = [d.load(p) for p, d in zip(parts, (first, second, third))]
    first.close()
    first.close()  # idempotent: does not drop another reference
    assert hailort.open_vdevices() == {(None, None, False): 2}
    assert loaded[0]._closed and not loaded[1]._closed  # a device closes its own partitions
    inputs = _inputs(loaded[1])
    _assert_outputs(fake_hp, loaded[1], inputs, loaded[1].infer(inputs, timeout_ms=2000))
    with pytest.raises(DeviceError, match="closed"):
        first.load(parts[0])
    second.close()
    third.close()
    assert hailort.open_vdevices() == {}
    assert fake_hp.STATE.live_vdevices == []
    with hailort.open_device():  # a fresh VDevice after the last release
        assert len(fake_hp.STATE.vdevices_created) == 2


def test_a_second_vdevice_on_a_busy_device_is_explained(fake_hp):
    with hailort.open_device(group_id="A"):
        with pytest.raises(DeviceError, match="in use by another process"):
            hailort.open_device(group_id="B")
        with hailort.open_device(group_id="A"):  # same key: shared, no second VDevice
            assert len(fake_hp.STATE.vdevices_created) == 1


def test_many_threads_share_one_vdevice(fake_hp):
    part_count = 8
    parts = [shortcut_partition(i) for i in range(part_count)]
    keeper = hailort.open_device()

    def session(i: int) -> None:
        with hailort.open_device() as device:
            loaded = device.load(parts[i], batch_size=1)
            for seed in range(3):
                inputs = _inputs(loaded, frames=2, seed=100 * i + seed)
                _assert_outputs(fake_hp, loaded, inputs, loaded.infer(inputs, 3000))

    run_concurrently(session, part_count, timeout=20.0)
    assert len(fake_hp.STATE.vdevices_created) == 1
    assert hailort.open_vdevices() == {(None, None, False): 1}
    keeper.close()


def test_threads_share_one_partition(fake_hp):
    part = shortcut_partition()
    errors: list[BaseException] = []
    with hailort.open_device() as device:
        loaded = device.load(part)

        def worker(i: int) -> None:
            try:
                for seed in range(5):
                    inputs = _inputs(part, frames=1 + seed % 3, seed=1000 * i + seed)
                    _assert_outputs(fake_hp, part, inputs, loaded.infer(inputs, 3000))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20.0)
    assert not errors, errors[0]


# ---------------------------------------------------------------------------------------------
# a real device


def _real_hailo_platform_or_skip():
    try:
        spec = importlib.util.find_spec("hailo_platform")
    except ValueError:
        spec = None
    if spec is None:
        pytest.skip("the real hailo_platform (HailoRT's Python wheel) is not installed")
    if spec.origin and Path(spec.origin).resolve().is_relative_to(Path(__file__).parent):
        pytest.skip("only the fake hailo_platform is importable")
    if not hailort.available():
        pytest.skip("hailo_platform is installed but no Hailo device was found")


def test_real_device_runs_arcface():
    _real_hailo_platform_or_skip()
    part = arcface_partition()
    with hailort.open_device() as device:
        if device.arch not in ("HAILO8", "HAILO8R"):
            pytest.skip(f"the arcface fixture HEF is for Hailo-8; this device is {device.arch}")
        loaded = device.load(part)
        inputs = _inputs(part, frames=2)
        first = {k: v.copy() for k, v in loaded.infer(inputs, timeout_ms=10000).items()}
        again = loaded.infer(inputs, timeout_ms=10000)
    out = first["arcface_mobilefacenet/fc1"]
    assert out.shape == (2, 512) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, again["arcface_mobilefacenet/fc1"])
