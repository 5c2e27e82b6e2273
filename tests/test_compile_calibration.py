"""Calibration loaders: images, .npz, .npy, feeds, random; and their errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from hailo_ort.compile import calibration as cal
from hailo_ort.compile.calibration import CalibrationWarning, load_calibration
from hailo_ort.errors import CalibrationError

ONE = {"x": ([1, 3, 8, 6], "float32")}
TWO = {"img": ([1, 3, 4, 4], "float32"), "meta": ([1, 5], "float32")}


def _quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        return load_calibration(*args, **kwargs)


def test_npy_single_input_both_layouts(tmp_path) -> None:
    data = np.arange(4 * 3 * 8 * 6, dtype=np.float32).reshape(4, 3, 8, 6)
    np.save(tmp_path / "a.npy", data)
    feeds = _quiet(tmp_path / "a.npy", ONE)
    assert len(feeds) == 4
    assert all(f["x"].shape == (1, 3, 8, 6) for f in feeds)
    np.testing.assert_array_equal(feeds[2]["x"][0], data[2])
    np.save(tmp_path / "b.npy", data[:, None])  # [N, 1, 3, 8, 6]: N samples shaped as the input
    feeds_b = _quiet(str(tmp_path / "b.npy"), ONE)
    np.testing.assert_array_equal(feeds_b[3]["x"], feeds[3]["x"])


def test_npz_multi_input(tmp_path) -> None:
    np.savez(
        tmp_path / "c.npz",
        img=np.ones((3, 1, 3, 4, 4), np.float32),
        meta=np.arange(15, dtype=np.float64).reshape(3, 5),
    )
    feeds = _quiet(tmp_path / "c.npz", TWO)
    assert len(feeds) == 3
    assert feeds[1]["meta"].dtype == np.float32 and feeds[1]["meta"].shape == (1, 5)
    np.testing.assert_array_equal(feeds[1]["meta"][0], [5, 6, 7, 8, 9])


def test_npz_unknown_and_missing_names(tmp_path) -> None:
    np.savez(tmp_path / "u.npz", img=np.ones((2, 3, 4, 4), np.float32), extra=np.ones((2, 5)))
    with pytest.raises(CalibrationError, match=r"unknown input 'extra'.*'meta' \[1, 5\]"):
        _quiet(tmp_path / "u.npz", TWO)
    np.savez(tmp_path / "m.npz", img=np.ones((2, 3, 4, 4), np.float32))
    with pytest.raises(CalibrationError, match=r"no data for input 'meta'.*\[1, 5\]"):
        _quiet(tmp_path / "m.npz", TWO)


def test_count_mismatch_between_inputs() -> None:
    with pytest.raises(CalibrationError, match="different sample counts"):
        _quiet({"img": np.ones((2, 3, 4, 4), np.float32), "meta": np.ones((3, 5))}, TWO)


def test_shape_mismatch_names_input_and_expected_shape(tmp_path) -> None:
    with pytest.raises(CalibrationError, match=r"input 'x'.*\[5, 3, 8, 7\].*\[1, 3, 8, 6\]"):
        _quiet(np.zeros((5, 3, 8, 7), np.float32), ONE)
    with pytest.raises(CalibrationError, match="looks NHWC"):
        _quiet(np.zeros((5, 8, 6, 3), np.float32), ONE)


def test_dtype_mismatch() -> None:
    with pytest.raises(CalibrationError, match="input 'x' is float32; the input is int64"):
        _quiet(np.zeros((2, 3), np.float32), {"x": ([1, 3], "int64")})
    with pytest.raises(CalibrationError, match="input 'x' is <U1; the input is float32"):
        _quiet(np.array([["a", "b", "c"]]), {"x": ([1, 3], "float32")})


def test_npy_for_multi_input_model_is_an_error(tmp_path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(CalibrationError, match=r"use an .npz"):
        _quiet(tmp_path / "a.npy", TWO)


def test_missing_source_and_missing_file(tmp_path) -> None:
    with pytest.raises(CalibrationError, match="--calib random"):
        load_calibration(None, ONE)
    with pytest.raises(CalibrationError, match="does not exist"):
        load_calibration(tmp_path / "nope.npz", ONE)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(CalibrationError, match=r"folder of images, an .npy or an .npz"):
        load_calibration(tmp_path / "x.txt", ONE)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(CalibrationError, match="cannot read"):
        load_calibration(tmp_path / "bad.npz", ONE)


def test_feeds_iterable_and_generator() -> None:
    rng = np.random.default_rng(0)
    feeds = (
        {"img": rng.random((1, 3, 4, 4), np.float32), "meta": rng.random((1, 5), np.float32)}
        for _ in range(3)
    )
    out = _quiet(feeds, TWO)
    assert len(out) == 3
    with pytest.raises(CalibrationError, match=r"sample 0.*no data for input 'meta'"):
        _quiet([{"img": np.zeros((1, 3, 4, 4), np.float32)}], TWO)
    with pytest.raises(CalibrationError, match="not a dict"):
        _quiet([1, 2], TWO)


def test_few_samples_warn_and_many_do_not() -> None:
    with pytest.warns(CalibrationWarning, match="only 3 calibration samples.*1,024"):
        load_calibration(np.zeros((3, 3, 8, 6), np.float32), ONE)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        feeds = load_calibration(np.zeros((300, 3, 8, 6), np.float32), ONE)
    assert len(feeds) == 300


def test_random_only_when_asked_and_warns() -> None:
    with pytest.warns(CalibrationWarning, match="random calibration"):
        feeds = load_calibration("random", TWO, pixel_inputs=["img"], random_samples=5)
    assert len(feeds) == 5
    img = np.stack([f["img"] for f in feeds])
    assert img.min() >= 0 and img.max() <= 255 and np.all(img == np.round(img))
    assert np.stack([f["meta"] for f in feeds]).min() < 0  # N(0, 1) for non-pixel inputs
    with pytest.raises(CalibrationError, match="int64 input 'ids'"):
        _quiet("random", {"ids": ([1, 4], "int64")})


def _write_images(folder, n, size=(10, 12)):
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(1)
    arrays = []
    for i in range(n):
        arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"img{i:02d}.png")
        arrays.append(arr)
    (folder / "notes.txt").write_text("ignored")
    return arrays


def test_image_folder_resizes_and_lays_out_nchw(tmp_path) -> None:
    pytest.importorskip("PIL", reason="Pillow not installed (pip install pillow)")
    arrays = _write_images(tmp_path / "imgs", 3, size=(6, 8))  # already the input size
    feeds = _quiet(tmp_path / "imgs", ONE, pixel_inputs=["x"])  # model normalises: 0..255
    assert len(feeds) == 3
    x = feeds[1]["x"]
    assert x.shape == (1, 3, 8, 6) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0], np.transpose(arrays[1], (2, 0, 1)).astype(np.float32))
    with pytest.warns(CalibrationWarning, match="0..1"):
        feeds01 = load_calibration(tmp_path / "imgs", ONE)
    np.testing.assert_allclose(feeds01[1]["x"], x / 255, rtol=1e-6)
    # other sizes are resized; NHWC inputs keep HWC
    resized = _quiet(tmp_path / "imgs", {"x": ([1, 5, 7, 3], "float32")}, image_scale=1.0)
    assert resized[0]["x"].shape == (1, 5, 7, 3)
    assert 0 <= resized[0]["x"].min() and resized[0]["x"].max() <= 255


def test_image_folder_errors(tmp_path) -> None:
    pytest.importorskip("PIL", reason="Pillow not installed (pip install pillow)")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="no images"):
        _quiet(tmp_path / "empty", ONE)
    _write_images(tmp_path / "imgs", 1)
    (tmp_path / "imgs" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.raises(CalibrationError, match=r"broken.jpg"):
        _quiet(tmp_path / "imgs", ONE)
    with pytest.raises(CalibrationError, match="single-input"):
        _quiet(tmp_path / "imgs", TWO)
    with pytest.raises(CalibrationError, match="image input"):
        _quiet(tmp_path / "imgs", {"x": ([1, 10], "float32")})


def test_image_folder_without_pillow(tmp_path, monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_pil(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("No module named 'PIL'")
        return real_import(name, *args, **kwargs)

    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(b"")
    monkeypatch.setattr(builtins, "__import__", no_pil)
    with pytest.raises(CalibrationError, match="pip install pillow"):
        _quiet(tmp_path / "imgs", ONE, pixel_inputs=["x"])


def test_limit_and_digest() -> None:
    data = np.random.default_rng(0).random((10, 3, 8, 6), np.float32)
    feeds = _quiet(data, ONE, limit=4)
    assert len(feeds) == 4
    assert cal.calibration_digest(feeds) == cal.calibration_digest(_quiet(data[:4], ONE))
    changed = [dict(f) for f in feeds]
    changed[2] = {"x": changed[2]["x"] + 1e-3}
    assert cal.calibration_digest(changed) != cal.calibration_digest(feeds)


@pytest.mark.parametrize(("bad", "what"), [(np.nan, "NaN"), (np.inf, "an infinite value")])
def test_non_finite_calibration_names_input_and_sample(bad, what) -> None:
    # Before: "CompileError: ... scale issue" from deep inside the quantizer.
    arrays = {
        "img": np.zeros((6, 1, 3, 4, 4), np.float32),
        "meta": np.zeros((6, 1, 5), np.float32),
    }
    arrays["meta"][4, 0, 2] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CalibrationError, match=f"sample 4 of input 'meta' holds {what}"):
            load_calibration(arrays, TWO)


@pytest.mark.parametrize("limit", [0, -3])
def test_non_positive_limit_is_an_error(limit) -> None:
    with pytest.raises(CalibrationError, match=f"positive number of samples, got {limit}"):
        load_calibration(np.zeros((4, 1, 3, 8, 6), np.float32), ONE, limit=limit)


def test_text_file_as_npy_says_what_it_is(tmp_path) -> None:
    path = tmp_path / "calib.npy"
    path.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(CalibrationError, match=r"not a \.npy array file") as info:
        load_calibration(path, ONE)
    assert "allow_pickle" not in str(info.value)


def test_image_folder_feeds_hold_8_bit_pixels(tmp_path) -> None:
    # Before: every image was held as float32 (4 bytes a value; ~5 GB for 1,024 640x640
    # images); now 1 byte a value, scaled when read.
    import tracemalloc

    pytest.importorskip("PIL", reason="Pillow not installed (pip install pillow)")
    arrays = _write_images(tmp_path / "imgs", 12, size=(64, 48))
    spec = {"x": ([1, 3, 48, 64], "float32")}
    tracemalloc.start()
    feeds = _quiet(tmp_path / "imgs", spec, image_scale=1 / 255)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    float_bytes = 12 * 3 * 48 * 64 * 4
    assert held < float_bytes / 2
    assert len(feeds) == 12 and len(feeds[:5]) == 5
    want = np.transpose(arrays[7], (2, 0, 1)).astype(np.float32) * np.float32(1 / 255)
    np.testing.assert_array_equal(feeds[7]["x"][0], want)
    np.testing.assert_array_equal(feeds[:9][7]["x"], feeds[7]["x"])


def test_npy_calibration_is_read_lazily(tmp_path) -> None:
    # A large .npy is memory-mapped, not read into memory at once.
    import tracemalloc

    data = np.random.default_rng(3).random((64, 1, 3, 64, 64), dtype=np.float32)
    np.save(tmp_path / "c.npy", data)
    tracemalloc.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        feeds = load_calibration(tmp_path / "c.npy", {"x": ([1, 3, 64, 64], "float32")})
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert held < data.nbytes / 10
    assert len(feeds) == 64
    np.testing.assert_array_equal(feeds[17]["x"], data[17])
