import numpy as np
import pytest

from hailo_ort import _native


def test_page_size_is_power_of_two():
    ps = _native.page_size()
    assert ps >= 4096 and ps & (ps - 1) == 0


def test_round_up_to_pages():
    ps = _native.page_size()
    assert _native.round_up_to_pages(0) == ps
    assert _native.round_up_to_pages(1) == ps
    assert _native.round_up_to_pages(ps) == ps
    assert _native.round_up_to_pages(ps + 1) == 2 * ps


@pytest.mark.parametrize(
    "shape,dtype", [((1, 3, 224, 224), np.float32), ((7,), np.uint8), ((0,), np.uint16)]
)
def test_aligned_empty_is_page_aligned_zeroed_and_writable(shape, dtype):
    a = _native.aligned_empty(list(shape), np.dtype(dtype))
    assert a.shape == shape and a.dtype == dtype
    assert a.ctypes.data % _native.page_size() == 0
    assert a.flags.c_contiguous and a.flags.writeable
    assert not a.any()
    if a.size:
        a[...] = 7
        assert (a == 7).all()


def test_aligned_empty_rejects_negative_dims():
    with pytest.raises(ValueError):
        _native.aligned_empty([-1, 3], np.dtype(np.float32))
