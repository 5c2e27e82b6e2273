"""hailo_ort.buffers.BufferPool: alignment, reuse, safety, threads, zero-copy with ORT."""

from __future__ import annotations

import gc
import threading

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from _threads import run_concurrently
from onnx import TensorProto, helper

from hailo_ort import _native
from hailo_ort.buffers import BufferPool, page_size

PAGE = page_size()


def test_acquired_arrays_are_page_aligned_contiguous_and_writable():
    pool = BufferPool()
    for shape, dtype in [((1, 3, 5), np.float32), ((7,), np.uint8), ((0,), np.uint16), (5, "f8")]:
        a = pool.acquire(shape, dtype)
        expected_shape = (shape,) if isinstance(shape, int) else shape
        assert a.shape == expected_shape and a.dtype == np.dtype(dtype)
        assert a.ctypes.data % PAGE == 0
        assert a.flags.c_contiguous and a.flags.writeable
        a[...] = 3
        assert (a == 3).all()


def test_sizes_are_rounded_up_to_whole_pages():
    pool = BufferPool()
    a = pool.acquire((PAGE + 1,), np.uint8)
    b = pool.acquire((1,), np.uint8)
    st = pool.stats()
    assert st.live == 2 and st.live_bytes == 3 * PAGE
    assert _native.round_up_to_pages(PAGE + 1) == 2 * PAGE
    del a, b


def test_buffer_is_reused_after_the_array_dies():
    pool = BufferPool()
    a = pool.acquire((10, 10), np.float32)
    addr = a.ctypes.data
    del a
    st = pool.stats()
    assert st.live == 0 and st.free == 1 and st.returns == 1
    # same page-rounded size, different shape and dtype: the same memory comes back
    b = pool.acquire((100,), np.uint16)
    assert b.ctypes.data == addr
    st = pool.stats()
    assert (st.allocations, st.reuses, st.live, st.free) == (1, 1, 1, 0)


def test_memory_is_never_handed_to_two_live_users():
    pool = BufferPool()
    a = pool.acquire((64,), np.float32)
    b = pool.acquire((64,), np.float32)
    assert a.ctypes.data != b.ctypes.data  # a is live: b gets new memory
    view = a[10:20]  # a view keeps the buffer leased after `a` is gone
    addr_a = a.ctypes.data
    del a
    gc.collect()
    c = pool.acquire((64,), np.float32)
    assert c.ctypes.data not in (addr_a, b.ctypes.data)
    view[:] = 1.0  # still valid memory
    del view
    d = pool.acquire((64,), np.float32)
    assert d.ctypes.data == addr_a
    assert pool.stats().allocations == 3


def test_different_sizes_are_not_mixed():
    pool = BufferPool()
    a = pool.acquire((PAGE,), np.uint8)
    del a
    b = pool.acquire((PAGE + 1,), np.uint8)  # two pages: the one-page buffer does not fit
    st = pool.stats()
    assert st.allocations == 2 and st.reuses == 0 and st.free == 1
    del b


def test_max_free_bytes_and_trim():
    pool = BufferPool(max_free_bytes=PAGE)
    a, b = pool.acquire((PAGE,), np.uint8), pool.acquire((PAGE,), np.uint8)
    del a, b
    st = pool.stats()
    assert st.free == 1 and st.free_bytes == PAGE and st.discards == 1
    assert pool.trim() == PAGE
    assert pool.stats().free == 0
    with pytest.raises(ValueError):
        BufferPool(max_free_bytes=-1)


def test_arrays_outlive_the_pool():
    pool = BufferPool()
    a = pool.acquire((1000,), np.float64)
    del pool
    gc.collect()
    a[:] = 2.5
    assert a.sum() == 2500.0
    del a  # goes back to the (now unreachable) pool state without crashing


def test_bad_requests():
    pool = BufferPool()
    with pytest.raises(TypeError, match="Python objects"):
        pool.acquire((3,), object)
    with pytest.raises(TypeError):
        pool.acquire((3,), np.dtype([("a", np.float32), ("b", object)]))
    with pytest.raises(ValueError, match="negative"):
        pool.acquire((2, -1), np.float32)
    with pytest.raises(ValueError, match="too large"):
        pool.acquire((2**40, 2**40), np.float32)
    assert pool.stats().live == 0


def test_thread_safety():
    pool = BufferPool()
    n_threads, rounds = 6, 200
    start = threading.Barrier(n_threads)

    def work(tid: int) -> None:
        start.wait()
        for i in range(rounds):
            a = pool.acquire((256 + (i % 3) * 1024,), np.int32)
            a[:] = tid
            b = pool.acquire((256,), np.int32)
            b[:] = -tid
            # nobody else may have written into our buffers meanwhile
            assert (a == tid).all() and (b == -tid).all()
            del a, b

    run_concurrently(work, n_threads)
    st = pool.stats()
    assert st.live == 0
    assert st.allocations + st.reuses == n_threads * rounds * 2
    assert st.reuses > st.allocations  # buffers were recycled, not leaked


def _add_one_model() -> bytes:
    shape = [1, 3, 4, 4]
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])],
        "add_one",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        initializer=[helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_ort_iobinding_writes_into_pooled_array_without_copy():
    sess = ort.InferenceSession(_add_one_model(), providers=["CPUExecutionProvider"])
    pool = BufferPool()
    x = pool.acquire((1, 3, 4, 4), np.float32)
    x[...] = np.arange(48, dtype=np.float32).reshape(1, 3, 4, 4)
    y = pool.acquire((1, 3, 4, 4), np.float32)
    y[...] = -7.0

    x_value = ort.OrtValue.ortvalue_from_numpy(x)
    assert x_value.data_ptr() == x.ctypes.data  # ORT shares the pooled input memory

    binding = sess.io_binding()
    binding.bind_ortvalue_input("x", x_value)
    binding.bind_output("y", "cpu", 0, np.float32, list(y.shape), y.ctypes.data)
    sess.run_with_iobinding(binding)

    np.testing.assert_array_equal(y, x + 1.0)  # the result landed in our buffer
    (out_value,) = binding.get_outputs()
    assert out_value.data_ptr() == y.ctypes.data

    # reused across runs: same buffer, new result
    x[...] = 10.0
    sess.run_with_iobinding(binding)
    assert (y == 11.0).all()
