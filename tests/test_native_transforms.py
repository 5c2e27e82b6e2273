"""The native fused transforms against the numpy reference in hailo_ort.transforms."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from _threads import progress_during_calls, run_concurrently
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hailo_ort import _native, transforms
from hailo_ort.quant import QuantInfo
from hailo_ort.transforms import from_device, from_device_reference, to_device, to_device_reference

pytestmark = pytest.mark.skipif(
    not transforms.HAS_NATIVE_TRANSFORMS, reason="native transforms not built"
)

# (host_order, device_order, ndim) combinations the runtime uses, plus identities.
LAYOUTS = [
    ("NCHW", "NHWC", 4),
    ("NCHW", "NHCW", 4),
    ("NHWC", "NHCW", 4),
    ("NHWC", "NHWC", 4),
    ("NCHW", "NCHW", 4),
    ("NHCW", "NHCW", 4),
    ("NC", "NC", 2),
    ("NCHW", "NC", 2),
    ("NHW", "NHW", 3),
]


KERNEL_SETS = _native.kernel_sets() if transforms.HAS_NATIVE_TRANSFORMS else []


@pytest.fixture(params=KERNEL_SETS)
def kernel_set(request):
    """Run the test with each instruction-set variant of the kernels this CPU supports."""
    _native.use_kernel_set(request.param)
    yield request.param
    _native.use_kernel_set("auto")


@pytest.fixture
def split_early():
    """Split transforms from 256 KiB per thread (the defaults wait for several MB), so that
    test-sized tensors take the multi-threaded paths."""
    _native.set_min_bytes_per_thread(1 << 18, 1 << 18)
    yield
    _native.set_min_bytes_per_thread(0, 0)


def _device_feature_len(shape: tuple[int, ...], host: str, device: str) -> int:
    perm = transforms._perm(host, device, len(shape))
    dev_shape = tuple(shape[i] for i in perm)
    return dev_shape[transforms._feature_axis(device, len(shape))]


def _quant(draw_data, n_features: int, dtype: str, per_feature: bool) -> QuantInfo:
    qmax = float(np.iinfo(np.dtype(dtype)).max)
    # Powers of two make x / scale + zp land exactly on .5 ties; others exercise real division.
    scale_choices = [2.0**-4, 0.5, 1.0, 0.0137, 0.3, 3.7e-3]

    def one_scale() -> float:
        return draw_data.draw(st.sampled_from(scale_choices))

    def one_zp() -> float:
        return float(draw_data.draw(st.integers(0, int(qmax))))

    zp, scale = one_zp(), one_scale()
    q = QuantInfo(
        zp=zp,
        scale=scale,
        limvals_min=(0.0 - zp) * scale,
        limvals_max=(qmax - zp) * scale,
    )
    if per_feature:
        q.scales = [one_scale() for _ in range(n_features)]
        q.zps = [one_zp() for _ in range(n_features)]
        # limvals that cut off some values but not all (clip must happen before the division)
        q.limvals_min = -0.7 * max(q.scales) * qmax
        q.limvals_max = 0.8 * max(q.scales) * qmax
    return q


def _values(rng: np.random.Generator, shape: tuple[int, ...], q: QuantInfo) -> np.ndarray:
    scales = np.asarray(q.scales or [q.scale], dtype=np.float64)
    span = float(scales.max()) * 300.0
    x = rng.uniform(-span, span, size=shape)
    # Exact half-way points k + 0.5 (in units of the per-tensor scale) for round-half-even.
    ties = (rng.integers(-20, 300, size=shape) + 0.5 - q.zp) * q.scale
    pick = rng.random(size=shape) < 0.3
    x = np.where(pick, ties, x)
    return x.astype(np.float32)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_to_and_from_device_match_reference(kernel_set, data):
    host, device, ndim = data.draw(st.sampled_from(LAYOUTS))
    dims = st.integers(1, 21)
    shape = tuple([data.draw(st.integers(1, 2))] + [data.draw(dims) for _ in range(ndim - 1)])
    dtype = data.draw(st.sampled_from(["uint8", "uint16"]))
    per_feature = data.draw(st.booleans())
    n_feat = _device_feature_len(shape, host, device)
    q = _quant(data, n_feat, dtype, per_feature)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = _values(rng, shape, q)

    expected = to_device_reference(x, q, dtype, host, device)
    got = to_device(x, q, dtype, host, device)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)

    dev = rng.integers(0, np.iinfo(np.dtype(dtype)).max + 1, size=expected.shape).astype(dtype)
    back_expected = from_device_reference(dev, q, host, device)
    back = from_device(dev, q, host, device)
    assert back.dtype == np.float32 and back.shape == back_expected.shape
    np.testing.assert_array_equal(back.view(np.uint32), back_expected.view(np.uint32))


def test_fast_path_is_taken(monkeypatch):
    """With the reference disabled, supported arguments still work (so they ran natively)."""

    def boom(*args, **kwargs):
        raise AssertionError("reference path used")

    monkeypatch.setattr(transforms, "quantize", boom)
    monkeypatch.setattr(transforms, "dequantize", boom)
    q = QuantInfo(zp=3.0, scale=0.5, limvals_min=-1.5, limvals_max=126.0)
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    y = to_device(x, q, "uint8", "NCHW", "NHWC")
    assert y.shape == (2, 4, 5, 3)
    # independent expectation: element [n, h, w, c] = round(x[n, c, h, w] / 0.5 + 3), saturated
    assert y[1, 2, 3, 1] == min(255, int(x[1, 1, 2, 3]) * 2 + 3)
    back = from_device(y, q, "NCHW", "NHWC")
    assert back.shape == x.shape
    # int8 device values are not a native type: the reference runs
    with pytest.raises(AssertionError, match="reference path used"):
        from_device(y.astype(np.int8), q, "NCHW", "NHWC")


def test_round_half_to_even_at_exact_ties(kernel_set):
    q = QuantInfo(zp=0.0, scale=1.0, limvals_min=-10.0, limvals_max=300.0)
    x = np.array(
        [[0.5, 1.5, 2.5, 3.5, -0.5, 253.5, 254.5, 255.5, 0.49999997, 2.5000002]], np.float32
    )
    expected = np.array([[0, 2, 2, 4, 0, 254, 254, 255, 0, 3]], np.uint8)
    np.testing.assert_array_equal(to_device(x, q, "uint8", "NC", "NC"), expected)
    np.testing.assert_array_equal(to_device_reference(x, q, "uint8", "NC", "NC"), expected)
    # with a scale: x / 0.25 + 1 = 1.5 -> 2, 2.5 -> 2, 3.5 -> 4
    q2 = QuantInfo(zp=1.0, scale=0.25, limvals_min=-10.0, limvals_max=10.0)
    x2 = np.array([[0.125, 0.375, 0.625]], np.float32)
    np.testing.assert_array_equal(
        to_device(x2, q2, "uint16", "NC", "NC"), np.array([[2, 2, 4]], np.uint16)
    )


def test_clip_happens_before_division_and_saturates():
    # limvals [-1, 2], scale 0.01, zp 100: 5.0 clips to 2 -> 300 -> saturates to 255 (uint8)
    # but stays 300 for uint16; -3 clips to -1 -> 0.
    q = QuantInfo(zp=100.0, scale=0.01, limvals_min=-1.0, limvals_max=2.0)
    x = np.array([[5.0, -3.0, 0.0, 1.0]], np.float32)
    np.testing.assert_array_equal(to_device(x, q, "uint8", "NC", "NC"), [[255, 0, 100, 200]])
    np.testing.assert_array_equal(to_device(x, q, "uint16", "NC", "NC"), [[300, 0, 100, 200]])


def test_nan_and_inf(kernel_set):
    """inf is clipped to the limvals; NaN quantizes to 0, as numpy's cast does on this host."""
    q = QuantInfo(zp=100.0, scale=0.01, limvals_min=-1.0, limvals_max=2.0)
    payload_nan = np.frombuffer(np.uint32(0x7FC01234).tobytes(), np.float32)[0]
    specials = np.array([np.nan, np.inf, -np.inf, -np.nan, payload_nan, 1.0], np.float32)
    # long enough for the vector loops, with a scalar tail
    x = np.tile(specials, 13)[None, :]
    for dtype, top in (("uint8", 255), ("uint16", 300)):
        got = to_device(x, q, dtype, "NC", "NC")
        np.testing.assert_array_equal(got, np.tile([0, top, 0, 0, 0, 200], 13)[None, :])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = to_device_reference(x, q, dtype, "NC", "NC")
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_every_integer_value_round_trips(kernel_set, dtype):
    """x = k with scale 1 and zp 0 quantizes to k for every representable k (vector packing)."""
    top = np.iinfo(np.dtype(dtype)).max
    q = QuantInfo(zp=0.0, scale=1.0, limvals_min=0.0, limvals_max=float(top))
    k = np.arange(top + 1, dtype=np.int64)
    got = to_device(k.astype(np.float32)[None, :], q, dtype, "NC", "NC")
    np.testing.assert_array_equal(got[0], k)
    back = from_device(got, q, "NC", "NC")
    np.testing.assert_array_equal(back[0], k.astype(np.float32))


def test_dequantize_per_feature_values():
    q = QuantInfo(scales=[0.5, 2.0, 0.25], zps=[1.0, 0.0, 8.0])
    dev = np.array([[[[3, 4, 8], [1, 0, 0]]]], np.uint8)  # NHWC (1, 1, 2, 3)
    got = from_device(dev, q, "NCHW", "NHWC")
    expected = np.array([[[[1.0, 0.0]], [[8.0, 0.0]], [[0.0, -2.0]]]], np.float32)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "host,device,shape",
    [
        ("NCHW", "NHWC", (2, 5, 301, 257)),
        ("NCHW", "NHCW", (1, 7, 203, 311)),
        ("NHWC", "NHWC", (1, 347, 411, 3)),
        ("NCHW", "NHWC", (1, 80, 97, 83)),  # a detector head: 16x16 SIMD transposes + tails
        ("NHWC", "NHCW", (1, 301, 467, 3)),  # few channels: whole-tile blocks, de-interleaving
        ("NCHW", "NHWC", (1, 3, 431, 347)),
    ],
)
@pytest.mark.parametrize("per_feature", [True, False])
def test_large_tensors_multithreaded_match_reference(
    kernel_set, split_early, host, device, shape, per_feature
):
    rng = np.random.default_rng(7)
    x = rng.normal(0, 2, size=shape).astype(np.float32)
    n_feat = _device_feature_len(shape, host, device)
    q = QuantInfo(zp=128.0, scale=0.02, limvals_min=-2.56, limvals_max=2.54)
    if per_feature:
        q.scales = list(rng.uniform(0.01, 0.03, n_feat))
        q.zps = list(rng.integers(100, 150, n_feat).astype(float))
    # bytes touched: float32 in, uint8 out; this size is split when two threads are asked for
    assert _native.transform_threads(2, x.nbytes + x.size) == 2
    assert _native.transform_threads(2, x.nbytes + x.size, quantize=False) == 2
    expected = to_device_reference(x, q, "uint8", host, device)
    for threads in (1, 2, 0):
        np.testing.assert_array_equal(
            to_device(x, q, "uint8", host, device, threads=threads), expected
        )
    for dev in (expected, expected.astype(np.uint16) * 257):
        back_expected = from_device_reference(dev, q, host, device)
        for threads in (1, 2):
            back = from_device(dev, q, host, device, threads=threads)
            np.testing.assert_array_equal(back.view(np.uint32), back_expected.view(np.uint32))


def test_kernel_sets():
    sets = _native.kernel_sets()
    assert "baseline" in sets and _native.kernel_set() == sets[-1]
    with pytest.raises(ValueError, match="not available"):
        _native.use_kernel_set("no-such-isa")


def test_small_tensors_use_one_thread():
    assert _native.transform_threads(8, 4000) == 1
    assert _native.transform_threads(1, 1 << 30) == 1
    assert _native.transform_threads(0, 1 << 30) >= 1
    # dequantizing a YOLOv8 80x80 head (2.5 MB touched) is not split by default: it is bound by
    # writing the floats, and two threads were slower than one (benchmarks/README.md)
    assert _native.transform_threads(2, 80 * 80 * 80 * 5, quantize=False) == 1
    assert _native.transform_threads(2, 80 * 80 * 80 * 5 * 4, quantize=False) == 2
    # a 640x640 input (6 MB touched) is
    assert _native.transform_threads(2, 3 * 640 * 640 * 5) == 2


def test_thread_thresholds_can_be_set():
    default = _native.min_bytes_per_thread()
    try:
        _native.set_min_bytes_per_thread(1000, 3000)
        assert _native.min_bytes_per_thread() == (1000, 3000)
        assert _native.transform_threads(8, 4000) == 4
        assert _native.transform_threads(8, 4000, quantize=False) == 1
    finally:
        _native.set_min_bytes_per_thread(0, 0)
    assert _native.min_bytes_per_thread() == default


def test_concurrent_calls_from_python_threads():
    rng = np.random.default_rng(3)
    q = QuantInfo(zp=10.0, scale=0.05, limvals_min=-0.5, limvals_max=12.25)
    inputs = [rng.normal(2, 3, size=(1, 3, 97, 131)).astype(np.float32) for _ in range(4)]
    expected = [to_device_reference(x, q) for x in inputs]

    def work(i: int) -> None:
        for _ in range(20):
            np.testing.assert_array_equal(to_device(inputs[i], q), expected[i])

    run_concurrently(work, 4)


def test_multithreaded_calls_from_python_threads_share_the_pool(split_early):
    """Several Python threads running split transforms at once (each large enough to use 4
    threads) get the reference results; the pool's workers are started once, not per call."""
    rng = np.random.default_rng(4)
    q = QuantInfo(zp=10.0, scale=0.05, limvals_min=-0.5, limvals_max=12.25)
    inputs = [rng.normal(2, 3, size=(1, 3, 640, 640)).astype(np.float32) for _ in range(3)]
    expected = [to_device_reference(x, q, "uint8", "NCHW", "NHWC") for x in inputs]
    assert _native.transform_threads(4, inputs[0].nbytes) == 4
    before = _native.pool_workers()  # earlier tests may have started some

    def work(i: int) -> None:
        for _ in range(6):
            got = to_device(inputs[i], q, "uint8", "NCHW", "NHWC", threads=4)
            np.testing.assert_array_equal(got, expected[i])
            back = from_device(got, q, "NCHW", "NHWC", threads=4)
            ref = from_device_reference(got, q, "NCHW", "NHWC")
            np.testing.assert_array_equal(back.view(np.uint32), ref.view(np.uint32))

    run_concurrently(work, 3)
    started = _native.pool_workers()
    assert 1 <= started and started <= max(before, 3)  # threads - 1 = 3 workers serve them all
    to_device(inputs[0], q, "uint8", "NCHW", "NHWC", threads=4)
    assert _native.pool_workers() == started


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_split_transforms_work_in_a_forked_child(split_early):
    """A child forked after the pool started (its workers are not copied) runs split transforms
    on a pool of its own, started afresh, not on the parent's record of workers it lacks."""
    q = QuantInfo(zp=10.0, scale=0.05, limvals_min=-0.5, limvals_max=12.25)
    x = np.random.default_rng(5).normal(2, 3, size=(1, 3, 640, 640)).astype(np.float32)
    expected = to_device_reference(x, q, "uint8", "NCHW", "NHWC")
    to_device(x, q, "uint8", "NCHW", "NHWC", threads=4)
    assert _native.pool_workers() >= 1
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()

    def child() -> None:
        before = _native.pool_workers()
        got = to_device(x, q, "uint8", "NCHW", "NHWC", threads=4)
        results.put((bool(np.array_equal(got, expected)), before, _native.pool_workers()))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        proc = ctx.Process(target=child)
        proc.start()
    proc.join(timeout=60)
    if proc.is_alive():  # pragma: no cover - the failure this test is about
        proc.kill()
        pytest.fail("the forked child hung in a split transform")
    assert proc.exitcode == 0
    same, before, after = results.get(timeout=5)
    assert same and before == 0 and after >= 1


def test_out_buffers():
    q = QuantInfo(zp=0.0, scale=0.1, limvals_min=0.0, limvals_max=25.5)
    x = np.linspace(0, 30, 2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    expected = to_device_reference(x, q)
    out = np.empty((2, 4, 5, 3), np.uint8)
    assert to_device(x, q, out=out) is out
    np.testing.assert_array_equal(out, expected)
    # a non-contiguous out is filled through the reference
    big = np.zeros((2, 4, 5, 6), np.uint8)
    res = to_device(x, q, out=big[..., ::2])
    np.testing.assert_array_equal(big[..., ::2], expected)
    assert res.base is big
    with pytest.raises(ValueError, match="out"):
        to_device(x, q, out=np.empty((2, 4, 5, 4), np.uint8))
    with pytest.raises(ValueError, match="out"):
        to_device(x, q, out=np.empty((2, 4, 5, 3), np.uint16))
    back = np.empty(x.shape, np.float32)
    assert from_device(expected, q, out=back) is back
    with pytest.raises(ValueError, match="out"):
        from_device(expected, q, out=np.empty((2, 3, 4, 6), np.float32))
    # non-contiguous inputs are accepted (copied first)
    np.testing.assert_array_equal(to_device(np.asfortranarray(x), q), expected)
    with pytest.raises(ValueError):
        to_device(x, q, threads=-1)


S = np.array([0.5], np.float32)
Z = np.array([1.0], np.float32)


def _raw_to_device(x, out, host="NCHW", device="NHWC", scales=S, zps=Z, threads=0):
    _native.to_device(x, out, host, device, scales, zps, -1.0, 1.0, threads)


class TestNativeBoundChecks:
    def test_wrong_dtypes_are_type_errors(self):
        x = np.zeros((1, 3, 4, 5), np.float32)
        with pytest.raises(TypeError, match="float32"):
            _raw_to_device(x.astype(np.float64), np.zeros((1, 4, 5, 3), np.uint8))
        with pytest.raises(TypeError, match="uint8 or uint16"):
            _raw_to_device(x, np.zeros((1, 4, 5, 3), np.int8))
        with pytest.raises(TypeError, match="float32"):
            _raw_to_device(x.astype(">f4"), np.zeros((1, 4, 5, 3), np.uint8))
        with pytest.raises(TypeError, match="numpy array"):
            _raw_to_device([[1.0]], np.zeros((1, 1), np.uint8))
        with pytest.raises(TypeError, match="uint8 or uint16"):
            _native.from_device(x, np.zeros((1, 3, 4, 5), np.float32), "NCHW", "NHWC", S, Z)
        with pytest.raises(TypeError, match="float32"):
            _native.from_device(
                np.zeros((1, 4, 5, 3), np.uint8), np.zeros((1, 3, 4, 5)), "NCHW", "NHWC", S, Z
            )

    def test_wrong_shapes_and_layouts_are_value_errors(self):
        x = np.zeros((1, 3, 4, 5), np.float32)
        with pytest.raises(ValueError, match="expected shape"):
            _raw_to_device(x, np.zeros((1, 3, 4, 5), np.uint8))
        with pytest.raises(ValueError, match="expected shape"):
            _raw_to_device(x, np.zeros((1, 4, 5, 3, 1), np.uint8))
        with pytest.raises(ValueError, match="no transform"):
            _raw_to_device(x, np.zeros((1, 4, 5, 3), np.uint8), host="NHWC", device="NCHW_X")
        with pytest.raises(ValueError, match="per-feature"):
            _raw_to_device(
                x,
                np.zeros((1, 4, 5, 3), np.uint8),
                scales=np.ones(4, np.float32),
                zps=np.ones(4, np.float32),
            )
        with pytest.raises(ValueError, match="zero points"):
            _raw_to_device(x, np.zeros((1, 4, 5, 3), np.uint8), scales=np.ones(3, np.float32))
        with pytest.raises(ValueError, match="non-empty"):
            _raw_to_device(
                x,
                np.zeros((1, 4, 5, 3), np.uint8),
                scales=np.ones(0, np.float32),
                zps=np.ones(0, np.float32),
            )
        with pytest.raises(ValueError, match="threads"):
            _raw_to_device(x, np.zeros((1, 4, 5, 3), np.uint8), threads=-2)
        with pytest.raises(ValueError, match="expected shape"):
            _native.from_device(
                np.zeros((1, 4, 5, 3), np.uint8),
                np.zeros((1, 3, 5, 4), np.float32),
                "NCHW",
                "NHWC",
                S,
                Z,
            )

    def test_bad_memory_layouts_are_value_errors(self):
        x = np.zeros((1, 3, 4, 10), np.float32)
        with pytest.raises(ValueError, match="C-contiguous"):
            _raw_to_device(x[..., ::2], np.zeros((1, 4, 5, 3), np.uint8))
        out = np.zeros((1, 4, 10, 3), np.uint8)
        out.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            _raw_to_device(x, out)
        with pytest.raises(ValueError, match="C-contiguous"):
            _raw_to_device(x, np.zeros((1, 4, 10, 6), np.uint8)[..., ::2])
        raw = np.zeros(4 * 30 + 1, np.uint8)
        unaligned = raw[1:].view(np.float32).reshape(1, 3, 10)
        with pytest.raises(ValueError, match="aligned"):
            _native.to_device(unaligned, np.zeros((1, 3, 10), np.uint8), "NC", "NC", S, Z, 0.0, 1.0)
        # out overlapping the input
        buf = np.zeros(2 * 3 * 10, np.float32)
        with pytest.raises(ValueError, match="overlaps"):
            _native.to_device(
                buf[:30].reshape(3, 10),
                buf.view(np.uint8)[:30].reshape(3, 10),
                "NC",
                "NC",
                S,
                Z,
                0.0,
                1.0,
            )

    def test_non_strict_calls_report_unusable_layouts(self):
        """strict=False: False (nothing written) where strict raises; real errors still raise."""
        x = np.ones((1, 3, 4, 10), np.float32)
        out = np.zeros((1, 4, 10, 3), np.uint8)
        args = ("NCHW", "NHWC", S, Z, 0.0, 100.0, 1, False)
        assert _native.to_device(x, out, *args) is True
        assert (out == 3).all()  # 1 / 0.5 + 1
        assert _native.to_device(np.ones((1, 3, 4, 20), np.float32)[..., ::2], out, *args) is False
        read_only = np.zeros_like(out)
        read_only.flags.writeable = False
        assert _native.to_device(x, read_only, *args) is False
        strided = np.zeros((1, 4, 10, 6), np.uint8)
        assert _native.to_device(x, strided[..., ::2], *args) is False
        assert not strided.any()
        buf = np.zeros(30, np.float32)
        alias = buf.view(np.uint8)[:30].reshape(3, 10)
        assert (
            _native.to_device(buf.reshape(3, 10), alias, "NC", "NC", S, Z, 0.0, 1.0, 1, False)
            is False
        )
        with pytest.raises(ValueError, match="expected shape"):
            _native.to_device(x, np.zeros((1, 4, 10, 4), np.uint8), *args)
        back = np.zeros((1, 3, 4, 10), np.float32)
        assert _native.from_device(out, back, "NCHW", "NHWC", S, Z, 1, False) is True
        assert (back == 1.0).all()
        assert _native.from_device(out, back[..., ::2], "NCHW", "NHWC", S, Z, 1, False) is False

    def test_empty_tensors(self):
        x = np.zeros((0, 3, 4, 5), np.float32)
        out = np.zeros((0, 4, 5, 3), np.uint8)
        _raw_to_device(x, out)
        q = QuantInfo()
        assert to_device(x, q).shape == (0, 4, 5, 3)
        assert from_device(out, q).shape == (0, 3, 4, 5)


def test_gil_is_released_during_the_kernel():
    """While a thread runs native transforms, another Python thread keeps running."""
    x = np.random.default_rng(0).normal(size=(1, 3, 1280, 1280)).astype(np.float32)
    out = np.empty((1, 1280, 1280, 3), np.uint8)
    q = QuantInfo(zp=128.0, scale=0.02, limvals_min=-2.56, limvals_max=2.54)
    params = transforms._native_params(q)
    assert params is not None

    def call() -> None:
        _native.to_device(x, out, "NCHW", "NHWC", *params, 1)

    assert progress_during_calls(call, 5) > 0


def _three_channel_values(rng: np.random.Generator, shape: tuple[int, ...], q: QuantInfo):
    """Values over and beyond the limvals, exact .5 ties of every channel, and NaN / +-inf."""
    scales = np.asarray(q.scales or [q.scale], np.float64)
    zps = np.asarray(q.zps or [q.zp], np.float64)
    span = 1.5 * min(max(abs(q.limvals_min), abs(q.limvals_max)), 1e4)
    x = rng.uniform(-span, span, size=shape)
    c = rng.integers(0, scales.size, size=shape)
    ties = (rng.integers(-20, 300, size=shape) + 0.5 - zps[c]) * scales[c]
    x = np.where(rng.random(size=shape) < 0.3, ties, x)
    special = rng.choice(np.array([np.nan, np.inf, -np.inf, 1e30, -1e30]), size=shape)
    x = np.where(rng.random(size=shape) < 0.02, special, x)
    return x.astype(np.float32)


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize(
    "limvals",
    [
        (-3.0, 5.0),  # the clip at lo only yields 0 for zp 96: left out
        (0.5, 5.0),  # the clip at lo yields a positive value: kept
        (-np.inf, np.inf),  # no finite bound: the general kernel
    ],
)
@pytest.mark.parametrize("host,device", [("NCHW", "NHWC"), ("NHWC", "NHCW")])
def test_three_channel_layouts_match_reference(
    kernel_set, dtype, per_channel, limvals, host, device
):
    """3 channels NCHW -> NHWC (interleaving kernel) and NHWC -> NHCW (de-interleaving kernel,
    one scale): whole vectors and scalar tails."""
    q = QuantInfo(zp=96.0, scale=8.0 / 255.0, limvals_min=limvals[0], limvals_max=limvals[1])
    if per_channel:
        q.scales = [8.0 / 255.0, 0.0137, 0.3]
        q.zps = [96.0, 0.0, 7.0]
    rng = np.random.default_rng(7)
    for n, h, w in [(2, 37, 29), (1, 8, 8), (1, 1, 5), (1, 64, 96), (2, 3, 70)]:
        shape = (n, 3, h, w) if host == "NCHW" else (n, h, w, 3)
        x = _three_channel_values(rng, shape, q)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = to_device_reference(x, q, dtype, host, device)
        got = to_device(x, q, dtype, host, device, threads=1)
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_values_below_a_positive_floor_clip_to_it(kernel_set, dtype):
    """lo = 0.5 with scale 0.01 and zp 0: anything below 0.5 (and -inf) quantizes to 50."""
    q = QuantInfo(zp=0.0, scale=0.01, limvals_min=0.5, limvals_max=2.0)
    x = np.full((1, 3, 4, 40), -7.0, np.float32)
    x[0, 1, 2, 5] = -np.inf
    x[0, 2, 3, 39] = 1.0  # -> 100
    x[0, 0, 0, 0] = 0.505  # float32(0.505) / float32(0.01) is 50.5 exactly -> 50 (half to even)
    x[0, 0, 0, 1] = 0.515  # likewise 51.5 -> 52
    got = to_device(x, q, dtype, "NCHW", "NHWC", threads=1)
    expected = np.full((1, 4, 40, 3), 50, dtype)
    expected[0, 3, 39, 2] = 100
    expected[0, 0, 1, 0] = 52
    np.testing.assert_array_equal(got, expected)
    flat = to_device(x.reshape(1, -1), q, dtype, "NC", "NC", threads=1)
    np.testing.assert_array_equal(flat, expected.transpose(0, 3, 1, 2).reshape(1, -1))


def _check_from_device_in_guarded_out(
    dev: np.ndarray, q: QuantInfo, device: str, guard: float
) -> None:
    """Dequantize ``dev`` to NCHW on one thread into an ``out`` with 16 floats of ``guard``
    either side: the reference's values, and nothing written outside ``out``."""
    expected = from_device_reference(dev, q, "NCHW", device)
    size = expected.size
    buf = np.full(size + 32, guard, np.float32)
    out = buf[16 : 16 + size].reshape(expected.shape)
    from_device(dev, q, "NCHW", device, out=out, threads=1)
    np.testing.assert_array_equal(out.view(np.uint32), expected.view(np.uint32))
    assert (buf[:16] == guard).all() and (buf[16 + size :] == guard).all()


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_nhwc_to_nchw_channel_groups_match_reference(kernel_set, dtype, per_channel):
    """NHWC -> NCHW dequantize for channel counts around the 16/64-value groups of the
    transposing kernel, with row tails; nothing is written outside `out`."""
    rng = np.random.default_rng(11)
    top = np.iinfo(np.dtype(dtype)).max
    for channels in [3, 16, 17, 21, 32, 47, 63, 64, 70, 80, 130]:
        # 47 x 45 = 2115 pixels: long rows (groups of 16 values, 64-row blocks, a tail of 3)
        for h, w in [(1, 1), (3, 5), (4, 4), (7, 9), (20, 20), (47, 45)]:
            n = 2 if h == 3 else 1
            q = QuantInfo(zp=7.0, scale=0.0137)
            if per_channel:
                q.scales = list(rng.uniform(0.001, 0.5, channels))
                q.zps = [float(z) for z in rng.integers(0, 200, channels)]
            dev = rng.integers(0, top + 1, size=(n, h, w, channels)).astype(dtype)
            _check_from_device_in_guarded_out(dev, q, "NHWC", -123.0)


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_nhcw_to_nchw_rows_match_reference(kernel_set, dtype, per_channel):
    """NHCW -> NCHW dequantize (strided rows of W values), W around the 16-value vectors;
    nothing is written outside `out`."""
    rng = np.random.default_rng(5)
    top = np.iinfo(np.dtype(dtype)).max
    for n, h, c, w in [(1, 3, 5, 16), (2, 4, 3, 17), (1, 7, 6, 31), (1, 9, 80, 80), (1, 2, 4, 100)]:
        q = QuantInfo(zp=9.0, scale=0.0371)
        if per_channel:
            q.scales = list(rng.uniform(0.001, 0.5, c))
            q.zps = [float(z) for z in rng.integers(0, 200, c)]
        dev = rng.integers(0, top + 1, size=(n, h, c, w)).astype(dtype)
        _check_from_device_in_guarded_out(dev, q, "NHCW", -77.0)


def test_per_feature_parameters_edited_in_place_are_used():
    """The per-feature parameters cached on a QuantInfo follow in-place edits of its lists."""
    rng = np.random.default_rng(3)
    q = QuantInfo(zp=0.0, scale=1.0, limvals_min=-50.0, limvals_max=50.0)
    q.scales = [0.5, 0.25, 0.125]
    q.zps = []  # per-feature scales with the per-tensor zero point
    x = rng.uniform(-10, 10, size=(1, 3, 4, 5)).astype(np.float32)
    dev = rng.integers(0, 256, size=(1, 4, 5, 3)).astype(np.uint8)

    def check() -> None:
        np.testing.assert_array_equal(to_device(x, q), to_device_reference(x, q))
        np.testing.assert_array_equal(from_device(dev, q), from_device_reference(dev, q))

    check()
    q.scales[1] = 2.0
    check()
    q.zp = 40.0  # used for every feature while zps is empty
    check()
    q.zps.extend([1.0, 2.0, 3.0])
    check()
    q.zps[2] = 90.0
    q.limvals_max = 5.0
    check()
    assert from_device(dev, q)[0, 2, 0, 0] == (float(dev[0, 0, 0, 2]) - 90.0) * np.float32(0.125)


# Scales a reciprocal gets wrong most easily (1/255, 0.1, significands of all ones, the bounds of
# the reciprocal path and just beyond them) and random ones over many decades.
_RECIPROCAL_SCALES = [
    1 / 255,
    0.1,
    np.nextafter(np.float32(2.0), np.float32(0.0)),
    np.nextafter(np.float32(1.0), np.float32(2.0)),
    16777215.0 * 2.0**-40,
    2.0**-30,
    2.0**-31,
    2.0**30,
    2.0**31,
    *np.random.default_rng(3).uniform(-9.0, 4.0, 12).round(6),
]


def _near_thresholds(rng: np.random.Generator, scale: float, zp: float, qmax: float, n: int):
    """float32 values a few ulps either side of where x / scale + zp crosses k + 0.5, tiny values
    around 2^-70 (where the FMA remainder underflows) and subnormals, signed zeros, and values
    whose product with 1 / scale overflows (+-FLT_MAX, +-inf; NaN)."""
    k = rng.integers(-3, int(qmax) + 3, size=n)
    t = ((k + 0.5 - zp) * np.float64(scale)).astype(np.float32)
    t = t[np.isfinite(t) & (t != 0)]
    near = (t.view(np.int32) + rng.integers(-4, 5, size=t.size).astype(np.int32)).view(np.float32)
    tiny = (rng.uniform(-1, 1, n) * 2.0 ** rng.uniform(-80, -60, n)).astype(np.float32)
    sub = (rng.integers(0, 2**32, n, dtype=np.uint32) & np.uint32(0x807FFFFF)).view(np.float32)
    huge = np.float32([np.finfo(np.float32).max, 1e30, np.inf, np.nan])
    x = np.concatenate([near, tiny, sub, np.float32([0.0, -0.0]), huge, -huge])
    return x[np.isfinite(x) | np.isin(x, huge) | np.isin(x, -huge) | np.isnan(x)]


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("scale", _RECIPROCAL_SCALES)
def test_quantize_matches_the_true_division_at_rounding_boundaries(kernel_set, dtype, scale):
    """Where the kernels divide by a corrected reciprocal (AVX2 / AVX-512), every value next to a
    rounding boundary and every tiny value quantizes as with the reference's true division: flat,
    3 planes interleaved and interleaved into 3 planes (the three kernels that use it); zero
    points 0, integers, 0.5 and 2^-11 (too small for the reciprocal: the true division)."""
    scale = float(np.float32(scale if scale > 0 else 10.0**scale))
    qmax = float(np.iinfo(np.dtype(dtype)).max)
    for zp in [0.0, 3.0, 128.0, 0.5, 2.0**-11]:
        rng = np.random.default_rng(int(scale * 1e6) % 2**31 + int(zp * 8))
        x = _near_thresholds(rng, scale, zp, qmax, 3000)
        x = x[: x.size - x.size % 3]
        # limvals around the whole range: the clip at lo yields 0 (left out by the kernels)
        # unless zp is large; a second pair clips inside the range
        for lo, hi in [
            ((-zp - 5) * scale, (qmax + 5 - zp) * scale),
            (-0.25 * scale, 0.75 * qmax * scale),
        ]:
            q = QuantInfo(zp=zp, scale=scale, limvals_min=lo, limvals_max=hi)
            for host, device, shape in [
                ("NC", "NC", (1, x.size)),
                ("NCHW", "NHWC", (1, 3, 1, x.size // 3)),
                ("NHWC", "NHCW", (1, 1, x.size // 3, 3)),
            ]:
                xs = x.reshape(shape)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    expected = to_device_reference(xs, q, dtype, host, device)
                got = to_device(xs, q, dtype, host, device, threads=1)
                msg = f"{host}->{device} zp={zp} limvals=({lo}, {hi})"
                np.testing.assert_array_equal(got, expected, err_msg=msg)


@pytest.mark.skipif(
    os.environ.get("HAILO_ORT_NO_VBMI") != "1", reason="runs in the child process of the test below"
)
def test_no_vbmi_switch_is_honoured():
    assert not _native.kernel_set_uses_vbmi()


@pytest.mark.skipif(
    not (transforms.HAS_NATIVE_TRANSFORMS and _native.kernel_set_uses_vbmi()),
    reason="no AVX-512 VBMI here: the other tests already run the paths without it",
)
def test_avx512_paths_without_vbmi_match_reference():
    """The AVX-512 kernels as on a CPU without VBMI (HAILO_ORT_NO_VBMI=1, in a child process):
    the 3-channel layouts and the transposing dequantize still match the reference."""
    env = dict(os.environ, HAILO_ORT_NO_VBMI="1")
    tests = [
        "test_no_vbmi_switch_is_honoured",
        "test_three_channel_layouts_match_reference",
        "test_nhwc_to_nchw_channel_groups_match_reference",
        "test_large_tensors_multithreaded_match_reference",
    ]
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-k",
        "avx512 or honoured",
    ]
    argv += [f"{__file__}::{name}" for name in tests]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.split("\n")[-2]
