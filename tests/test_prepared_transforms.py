"""Prepared per-stream transforms (prepare_to_device / prepare_from_device) against the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _threads import progress_during_calls, run_concurrently
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_native_transforms import (
    LAYOUTS,
    _device_feature_len,
    _quant,
    _values,
    kernel_set,  # noqa: F401 - fixture
)

from hailo_ort import _native, transforms
from hailo_ort.quant import QuantInfo
from hailo_ort.transforms import (
    ReferenceTransform,
    from_device_reference,
    prepare_from_device,
    prepare_to_device,
    to_device_reference,
)

pytestmark = pytest.mark.skipif(
    not transforms.HAS_NATIVE_TRANSFORMS, reason="native transforms not built"
)


def _same_floats(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_prepared_matches_reference(kernel_set, data):  # noqa: F811
    host, device, ndim = data.draw(st.sampled_from(LAYOUTS))
    dims = st.integers(1, 21)
    shape = tuple([data.draw(st.integers(1, 2))] + [data.draw(dims) for _ in range(ndim - 1)])
    dtype = data.draw(st.sampled_from(["uint8", "uint16"]))
    per_feature = data.draw(st.booleans())
    q = _quant(data, _device_feature_len(shape, host, device), dtype, per_feature)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))

    to_dev = prepare_to_device(q, dtype, host, device, shape)
    assert isinstance(to_dev, _native.PreparedTransform)
    expected = to_device_reference(_values(rng, shape, q), q, dtype, host, device)
    assert to_dev.in_shape == shape and to_dev.out_shape == expected.shape
    assert to_dev.in_dtype == np.float32 and to_dev.out_dtype == np.dtype(dtype)
    out = np.empty(expected.shape, dtype)
    for _ in range(2):  # the object is reused
        x = _values(rng, shape, q)
        expected = to_device_reference(x, q, dtype, host, device)
        assert to_dev(x, out) is out
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(to_dev(x), expected)

    from_dev = prepare_from_device(q, dtype, host, device, expected.shape)
    assert from_dev.in_shape == expected.shape and from_dev.out_shape == shape
    back_out = np.empty(shape, np.float32)
    for _ in range(2):
        dev = rng.integers(0, np.iinfo(np.dtype(dtype)).max + 1, size=expected.shape)
        dev = dev.astype(dtype)
        back_expected = from_device_reference(dev, q, host, device)
        assert from_dev(dev, back_out) is back_out
        _same_floats(back_out, back_expected)
        _same_floats(from_dev(dev), back_expected)


@pytest.mark.parametrize(
    "host,device,shape",
    [
        ("NCHW", "NHWC", (1, 3, 431, 347)),
        ("NCHW", "NHWC", (1, 80, 97, 83)),
        ("NCHW", "NHCW", (1, 7, 203, 311)),
        ("NHWC", "NHCW", (1, 301, 467, 3)),
    ],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_large_tensors_match_reference(host, device, shape, threads):
    rng = np.random.default_rng(11)
    x = rng.normal(0, 2, size=shape).astype(np.float32)
    n_feat = _device_feature_len(shape, host, device)
    q = QuantInfo(zp=128.0, scale=0.02, limvals_min=-2.56, limvals_max=2.54)
    q.scales = list(rng.uniform(0.01, 0.03, n_feat))
    q.zps = list(rng.integers(100, 150, n_feat).astype(float))
    expected = to_device_reference(x, q, "uint8", host, device)
    np.testing.assert_array_equal(
        prepare_to_device(q, "uint8", host, device, shape, threads=threads)(x), expected
    )
    dev16 = expected.astype(np.uint16) * 257
    for dev in (expected, dev16):
        prepared = prepare_from_device(q, dev.dtype, host, device, dev.shape, threads=threads)
        _same_floats(prepared(dev), from_device_reference(dev, q, host, device))


Q = QuantInfo(zp=3.0, scale=0.05, limvals_min=-0.15, limvals_max=12.6)


class TestChecks:
    to_dev = prepare_to_device(Q, "uint8", "NCHW", "NHWC", (1, 3, 4, 5))
    from_dev = prepare_from_device(Q, "uint16", "NCHW", "NHWC", (1, 4, 5, 3))
    x = np.zeros((1, 3, 4, 5), np.float32)
    q = np.zeros((1, 4, 5, 3), np.uint16)

    def test_wrong_dtypes_are_type_errors(self):
        with pytest.raises(TypeError, match="input must be float32"):
            self.to_dev(self.x.astype(np.float64), np.empty((1, 4, 5, 3), np.uint8))
        with pytest.raises(TypeError, match="out must be uint8"):
            self.to_dev(self.x, np.empty((1, 4, 5, 3), np.uint16))
        with pytest.raises(TypeError, match="input must be uint16"):
            self.from_dev(self.q.astype(np.uint8))
        with pytest.raises(TypeError, match="out must be float32"):
            self.from_dev(self.q, np.empty((1, 3, 4, 5), np.float64))
        with pytest.raises(TypeError, match="numpy array"):
            self.to_dev([[0.0]])
        with pytest.raises(TypeError, match="numpy array"):
            self.from_dev(self.q, "out")
        with pytest.raises(TypeError, match="float32"):  # byte-swapped is another dtype
            self.to_dev(self.x.astype(">f4"))

    def test_wrong_shapes_are_value_errors(self):
        with pytest.raises(ValueError, match=r"expected shape \(1, 3, 4, 5\)"):
            self.to_dev(np.zeros((1, 5, 4, 3), np.float32))  # same size, other shape
        with pytest.raises(ValueError, match="expected shape"):
            self.to_dev(np.zeros((3, 4, 5), np.float32))
        with pytest.raises(ValueError, match=r"out .*expected shape \(1, 4, 5, 3\)"):
            self.to_dev(self.x, np.empty((1, 3, 4, 5), np.uint8))
        with pytest.raises(ValueError, match="expected shape"):
            self.to_dev(self.x, np.empty(60, np.uint8))
        with pytest.raises(ValueError, match="expected shape"):
            self.from_dev(np.zeros((1, 4, 5, 4), np.uint16))
        with pytest.raises(ValueError, match="expected shape"):
            self.from_dev(self.q, np.empty((1, 4, 5, 3), np.float32))

    def test_bad_memory_layouts_are_value_errors(self):
        with pytest.raises(ValueError, match="C-contiguous"):
            self.to_dev(np.asfortranarray(np.zeros((1, 3, 4, 5), np.float32)))
        strided = np.zeros((1, 4, 5, 6), np.uint8)[..., ::2]
        with pytest.raises(ValueError, match="out must be C-contiguous"):
            self.to_dev(self.x, strided)
        read_only = np.empty((1, 4, 5, 3), np.uint8)
        read_only.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            self.to_dev(self.x, read_only)
        raw = np.zeros(60 * 4 + 1, np.uint8)
        misaligned = raw[1:].view(np.float32).reshape(1, 3, 4, 5)
        assert not misaligned.flags.aligned
        with pytest.raises(ValueError, match="aligned"):
            self.to_dev(misaligned)
        # out sharing memory with the input
        buf = np.zeros(60, np.float32)
        prepared = prepare_from_device(Q, "uint16", "NC", "NC", (1, 60))
        with pytest.raises(ValueError, match="overlaps"):
            prepared(buf.view(np.uint16)[:60].reshape(1, 60), buf.reshape(1, 60))

    def test_bad_preparation(self):
        with pytest.raises(TypeError, match="uint8 or uint16"):
            prepare_to_device(Q, "int8", "NCHW", "NHWC", (1, 3, 4, 5))
        with pytest.raises(ValueError, match="no transform"):
            prepare_to_device(Q, "uint8", "NHWC", "NCHW", (1, 3, 4, 5))
        with pytest.raises(ValueError, match="negative"):
            prepare_to_device(Q, "uint8", "NCHW", "NHWC", (1, -3, 4, 5))
        with pytest.raises(ValueError, match="threads"):
            prepare_from_device(Q, "uint8", "NCHW", "NHWC", (1, 4, 5, 3), threads=-1)
        with pytest.raises(ValueError, match="no transform"):
            _native.PreparedTransform(True, "uint8", "NHWC", "NCHW", [1, 3, 4, 5], [1.0], [0.0])
        with pytest.raises(ValueError, match="per-feature"):
            _native.PreparedTransform(
                True, "uint8", "NCHW", "NHWC", [1, 3, 4, 5], [1.0, 2.0], [0.0, 0.0]
            )

    def test_empty_tensors(self):
        prepared = prepare_to_device(Q, "uint8", "NCHW", "NHWC", (0, 3, 4, 5))
        assert prepared(np.zeros((0, 3, 4, 5), np.float32)).shape == (0, 4, 5, 3)


def test_quant_is_fixed_at_preparation():
    q = QuantInfo(zp=0.0, scale=1.0, limvals_min=0.0, limvals_max=255.0)
    q.scales, q.zps = [1.0, 2.0, 4.0], [0.0, 0.0, 0.0]
    dev = np.full((1, 2, 2, 3), 8, np.uint8)
    prepared = prepare_from_device(q, "uint8", "NCHW", "NHWC", dev.shape)
    q.scales[0] = 100.0
    np.testing.assert_array_equal(prepared(dev)[0, :, 0, 0], [8.0, 16.0, 32.0])


def test_nan_parameters_use_the_reference():
    q = QuantInfo(zp=float("nan"), scale=0.5, limvals_min=0.0, limvals_max=10.0)
    prepared = prepare_from_device(q, "uint8", "NCHW", "NHWC", (1, 2, 2, 3))
    assert isinstance(prepared, ReferenceTransform)
    dev = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
    assert all(math.isnan(v) for v in prepared(dev).ravel())
    assert prepared.out_shape == (1, 3, 2, 2) and prepared.in_dtype == np.uint8
    with pytest.raises(TypeError, match="uint8"):
        prepared(dev.astype(np.uint16))
    with pytest.raises(ValueError, match="expected shape"):
        prepared(dev.reshape(1, 2, 3, 2))
    read_only = np.empty((1, 3, 2, 2), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        prepared(dev, read_only)


@pytest.mark.parametrize("shape", [(1, 64, 20, 20), (1, 80, 160, 160)])  # GIL held / released
def test_one_object_from_several_threads(shape):
    rng = np.random.default_rng(5)
    n_feat = shape[1]
    q = QuantInfo(zp=7.0, scale=0.03, limvals_min=-0.21, limvals_max=7.44)
    q.scales = list(rng.uniform(0.02, 0.04, n_feat))
    q.zps = list(rng.integers(0, 20, n_feat).astype(float))
    to_dev = prepare_to_device(q, "uint8", "NCHW", "NHWC", shape)
    dev_shape = to_dev.out_shape
    from_dev = prepare_from_device(q, "uint8", "NCHW", "NHWC", dev_shape)
    inputs = [rng.normal(1, 2, size=shape).astype(np.float32) for _ in range(4)]
    expected = [to_device_reference(x, q) for x in inputs]
    back_expected = [from_device_reference(e, q) for e in expected]
    rounds = 30 if math.prod(shape) < 100_000 else 3

    def work(i: int) -> None:
        out = np.empty(dev_shape, np.uint8)
        back = np.empty(shape, np.float32)
        for _ in range(rounds):
            np.testing.assert_array_equal(to_dev(inputs[i], out), expected[i])
            _same_floats(from_dev(out, back), back_expected[i])

    run_concurrently(work, 4)


def test_gil_is_released_for_large_tensors_only():
    """The main thread runs during a call only when the call released the GIL."""
    q = QuantInfo(zp=128.0, scale=0.02, limvals_min=-2.56, limvals_max=2.54)

    def progress(shape: tuple[int, ...], calls: int) -> int:
        x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
        prepared = prepare_to_device(q, "uint8", "NCHW", "NHWC", shape, threads=1)
        out = np.empty(prepared.out_shape, np.uint8)
        return progress_during_calls(lambda: prepared(x, out), calls)

    assert progress((1, 3, 1280, 1280), 5) > 0
    assert progress((1, 3, 8, 8), 500) == 0


@pytest.mark.parametrize(
    "shape,dtype",
    [
        ((1, 80, 80, 80), np.float32),
        ((3, 7, 1001), np.uint16),
        ((4096,), np.uint8),
        ((0, 5), np.float32),
    ],
)
def test_empty_aligned(shape, dtype):
    a = transforms.empty_aligned(shape, dtype)
    assert a.shape == shape and a.dtype == dtype
    assert a.flags.c_contiguous and a.flags.writeable
    if a.nbytes >= 16 * 1024:
        assert a.ctypes.data % 64 == 0
    a[...] = 3  # the whole array is usable
    assert (a == 3).all()


def test_new_outputs_start_on_a_cache_line():
    """Outputs the transforms allocate themselves (what the runtime hands the user for a device
    output) start on a 64-byte line from 16 KiB on, and hold the reference's values."""
    q = QuantInfo(zp=7.0, scale=0.0137, limvals_min=-0.1, limvals_max=3.4)
    dev = np.random.default_rng(2).integers(0, 256, size=(1, 40, 40, 80)).astype(np.uint8)
    expected = from_device_reference(dev, q, "NCHW", "NHWC")
    prepared = prepare_from_device(q, "uint8", "NCHW", "NHWC", dev.shape)
    for got in (prepared(dev), prepared(dev), transforms.from_device(dev, q, "NCHW", "NHWC")):
        assert got.ctypes.data % 64 == 0 and got.flags.c_contiguous and got.flags.writeable
        np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
    x = expected.copy()
    dev_expected = to_device_reference(x, q, "uint8", "NCHW", "NHWC")
    prepared_q = prepare_to_device(q, "uint8", "NCHW", "NHWC", x.shape)
    for got in (prepared_q(x), transforms.to_device(x, q, "uint8", "NCHW", "NHWC")):
        assert got.ctypes.data % 64 == 0
        np.testing.assert_array_equal(got, dev_expected)
