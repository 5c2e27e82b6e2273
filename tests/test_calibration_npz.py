"""Calibration from .npz files: uncompressed members are memory-mapped, compressed ones read
whole (warned when large), broken files and members named in the error."""

from __future__ import annotations

import gc
import struct
import warnings
import zipfile

import numpy as np
import pytest
from compile_models import convnet_partition, image_feeds, small_convnet

from hailo_ort.compile import calibration as cal
from hailo_ort.compile import dfc
from hailo_ort.compile.calibration import (
    CalibrationWarning,
    calibration_digest,
    load_calibration,
    load_npz,
)
from hailo_ort.compile.emulate import compile_partition_emulated
from hailo_ort.errors import CalibrationError

TWO = {"img": ([1, 3, 8, 6], "float32"), "ids": ([1, 5], "uint8")}


def _quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        return load_calibration(*args, **kwargs)


def _over_memmap(a: np.ndarray) -> bool:
    """``a`` is a view whose base chain reaches an np.memmap (no copy of the data was made)."""
    base = a
    while isinstance(base, np.ndarray):
        if isinstance(base, np.memmap):
            return True
        base = base.base
    return False


def _two_inputs(n: int = 7, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "img": rng.standard_normal((n, 3, 8, 6), dtype=np.float32),
        "ids": rng.integers(0, 256, (n, 5), dtype=np.uint8),
    }


def _npy_bytes(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def test_uncompressed_npz_round_trips_as_views_over_memmaps(tmp_path) -> None:
    data = _two_inputs()
    np.savez(tmp_path / "c.npz", **data)
    feeds = _quiet(tmp_path / "c.npz", TWO)
    assert len(feeds) == 7
    for i, feed in enumerate(feeds):
        assert feed["img"].shape == (1, 3, 8, 6) and feed["img"].dtype == np.float32
        assert feed["ids"].shape == (1, 5) and feed["ids"].dtype == np.uint8
        np.testing.assert_array_equal(feed["img"][0], data["img"][i])
        np.testing.assert_array_equal(feed["ids"][0], data["ids"][i])
        assert _over_memmap(feed["img"]) and _over_memmap(feed["ids"])
        assert not feed["img"].flags.writeable  # mapped read-only: the file cannot change


def test_large_npz_is_not_read_into_memory(tmp_path) -> None:
    import tracemalloc

    data = np.random.default_rng(3).random((64, 1, 3, 64, 64), dtype=np.float32)
    np.savez(tmp_path / "big.npz", x=data)
    tracemalloc.start()
    feeds = _quiet(tmp_path / "big.npz", {"x": ([1, 3, 64, 64], "float32")})
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert held < data.nbytes / 10
    np.testing.assert_array_equal(feeds[41]["x"], data[41])


def test_fortran_ordered_member(tmp_path) -> None:
    data = np.asfortranarray(np.arange(4 * 3 * 8 * 6, dtype=np.float32).reshape(4, 3, 8, 6))
    np.savez(tmp_path / "f.npz", x=data)
    arrays = load_npz(tmp_path / "f.npz")
    assert isinstance(arrays["x"], np.memmap) and arrays["x"].flags.f_contiguous
    np.testing.assert_array_equal(arrays["x"], data)
    feeds = _quiet(tmp_path / "f.npz", {"x": ([3, 8, 6], "float32")})
    for i in range(4):
        np.testing.assert_array_equal(feeds[i]["x"], data[i])


def _write_stored(path, members: dict[str, bytes], *, extra: bytes = b"", zip64=False) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, payload in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_STORED
            info.extra = extra
            with zf.open(info, "w", force_zip64=zip64) as f:
                f.write(payload)


def test_local_extra_field_moves_the_data(tmp_path) -> None:
    data = _two_inputs(5, seed=1)
    # an unknown 13-byte extra field (id 0xCAFE): the data starts 17 bytes later, unaligned
    extra = struct.pack("<HH", 0xCAFE, 13) + b"extra-payload"
    path = tmp_path / "e.npz"
    _write_stored(path, {f"{k}.npy": _npy_bytes(v) for k, v in data.items()}, extra=extra)
    with open(path, "rb") as f:
        assert f.read(30)[28:30] == struct.pack("<H", len(extra))  # it is in the local header
    feeds = _quiet(path, TWO)
    assert len(feeds) == 5
    for i, feed in enumerate(feeds):
        np.testing.assert_array_equal(feed["img"][0], data["img"][i])
        np.testing.assert_array_equal(feed["ids"][0], data["ids"][i])
        assert _over_memmap(feed["img"])


def test_zip64_members(tmp_path) -> None:
    data = _two_inputs(3, seed=2)
    path = tmp_path / "z64.npz"
    _write_stored(path, {f"{k}.npy": _npy_bytes(v) for k, v in data.items()}, zip64=True)
    with zipfile.ZipFile(path) as zf:
        # the zip64 extra field is written in the local header only
        assert all(len(i.extra) == 0 for i in zf.infolist())
    feeds = _quiet(path, TWO)
    for i, feed in enumerate(feeds):
        np.testing.assert_array_equal(feed["img"][0], data["img"][i])
        assert _over_memmap(feed["ids"])


def test_npy_format_2_member_is_mapped(tmp_path) -> None:
    import io

    a = np.arange(30, dtype=np.float32).reshape(6, 5)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, version=(2, 0))
    _write_stored(tmp_path / "v2.npz", {"x.npy": buf.getvalue()})
    arrays = load_npz(tmp_path / "v2.npz")
    assert isinstance(arrays["x"], np.memmap)
    np.testing.assert_array_equal(arrays["x"], a)


def test_compressed_npz_loads_and_warns_only_when_large(tmp_path, monkeypatch) -> None:
    data = _two_inputs(4, seed=4)
    np.savez_compressed(tmp_path / "z.npz", **data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        arrays = load_npz(tmp_path / "z.npz")
    assert not [w for w in caught if "compressed" in str(w.message)]
    for k, v in data.items():
        np.testing.assert_array_equal(arrays[k], v)
    feeds = _quiet(tmp_path / "z.npz", TWO)
    np.testing.assert_array_equal(feeds[3]["img"][0], data["img"][3])

    # the threshold counts the uncompressed members: each one's .npy bytes
    total = sum(len(_npy_bytes(v)) for v in data.values())
    monkeypatch.setattr(cal, "COMPRESSED_NPZ_WARN_BYTES", total - 1)
    with pytest.warns(CalibrationWarning, match=r"z\.npz is a compressed .npz.*numpy\.savez"):
        arrays = load_npz(tmp_path / "z.npz")
    np.testing.assert_array_equal(arrays["ids"], data["ids"])
    monkeypatch.setattr(cal, "COMPRESSED_NPZ_WARN_BYTES", total)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        load_npz(tmp_path / "z.npz")


def test_truncated_npz_names_the_file(tmp_path) -> None:
    np.savez(tmp_path / "t.npz", **_two_inputs())
    raw = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CalibrationError, match=r"cut\.npz.*not a valid \.npz"):
        _quiet(tmp_path / "cut.npz", TWO)
    (tmp_path / "text.npz").write_text("img,ids\n1,2\n")
    with pytest.raises(CalibrationError, match=r"text\.npz.*not a valid \.npz"):
        _quiet(tmp_path / "text.npz", TWO)


def test_member_whose_data_is_cut_short(tmp_path) -> None:
    # the header promises [7, 3, 8, 6] float32 but only half the bytes follow
    payload = _npy_bytes(_two_inputs()["img"])
    _write_stored(tmp_path / "short.npz", {"img.npy": payload[: len(payload) // 2]})
    with pytest.raises(CalibrationError, match=r"short\.npz.*member 'img\.npy' is truncated"):
        load_npz(tmp_path / "short.npz")


def test_corrupt_local_header_names_the_member(tmp_path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **_two_inputs())
    with zipfile.ZipFile(path) as zf:
        offset = zf.getinfo("ids.npy").header_offset
    raw = bytearray(path.read_bytes())
    raw[offset : offset + 4] = b"XXXX"
    path.write_bytes(bytes(raw))
    with pytest.raises(CalibrationError, match=r"bad\.npz.*member 'ids\.npy'.*local header"):
        _quiet(path, TWO)


@pytest.mark.parametrize("compress", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_member_that_is_not_npy_names_the_member(tmp_path, compress) -> None:
    path = tmp_path / "notnpy.npz"
    with zipfile.ZipFile(path, "w", compress) as zf:
        zf.writestr("img.npy", _npy_bytes(_two_inputs()["img"]))
        zf.writestr("ids.npy", b"this is not an array at all")
    with pytest.raises(CalibrationError, match=r"notnpy\.npz.*member 'ids\.npy' is not a \.npy"):
        _quiet(path, TWO)


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_pickled_member_is_refused(tmp_path, save) -> None:
    path = tmp_path / "obj.npz"
    save(path, img=_two_inputs()["img"], ids=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(CalibrationError, match=r"obj\.npz.*member 'ids\.npy'.*Python objects"):
        _quiet(path, TWO)


def test_no_file_is_left_open(tmp_path) -> None:
    np.savez(tmp_path / "c.npz", **_two_inputs())
    np.savez_compressed(tmp_path / "z.npz", **_two_inputs())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in ("c.npz", "z.npz"):
            feeds = load_calibration(tmp_path / name, TWO)
            del feeds
        with pytest.raises(CalibrationError):
            load_calibration(tmp_path / "c.npz", {"img": TWO["img"]})
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_digest_of_mapped_feeds_equals_in_memory_digest(tmp_path) -> None:
    data = _two_inputs()
    data_f = {"img": np.asfortranarray(data["img"]), "ids": data["ids"]}
    in_memory = calibration_digest(_quiet({k: v.copy() for k, v in data.items()}, TWO))
    np.savez(tmp_path / "c.npz", **data)
    np.savez(tmp_path / "f.npz", **data_f)
    np.savez_compressed(tmp_path / "z.npz", **data)
    for name in ("c.npz", "f.npz", "z.npz"):
        assert calibration_digest(_quiet(tmp_path / name, TWO)) == in_memory, name
    other = dict(data, ids=data["ids"] ^ np.uint8(1))
    np.savez(tmp_path / "o.npz", **other)
    assert calibration_digest(_quiet(tmp_path / "o.npz", TWO)) != in_memory


def _convnet_npz(tmp_path, n: int):
    feeds = image_feeds(n)
    np.savez(tmp_path / "cal.npz", x=np.stack([f["x"] for f in feeds]))
    mapped = _quiet(tmp_path / "cal.npz", {"x": ([1, 3, 16, 16], "float32")})
    assert _over_memmap(mapped[0]["x"]) and not mapped[0]["x"].flags.aligned
    return feeds, mapped


def test_emulation_on_mapped_feeds_equals_in_memory(tmp_path) -> None:
    feeds, mapped = _convnet_npz(tmp_path, 10)
    part = convnet_partition("features")
    cp_mem = compile_partition_emulated(small_convnet(), part, feeds, "hailo8")
    cp_map = compile_partition_emulated(small_convnet(), part, mapped, "hailo8")
    assert cp_map.emulation == cp_mem.emulation
    assert cp_map.report["accuracy"] == cp_mem.report["accuracy"]


def test_dfc_calibration_set_from_mapped_feeds(tmp_path) -> None:
    feeds, mapped = _convnet_npz(tmp_path, 6)
    part = convnet_partition("features")
    (tmp_path / "mem").mkdir()
    (tmp_path / "map").mkdir()
    p_mem = dfc.write_calibration(small_convnet(), part, feeds, tmp_path / "mem", "net")
    p_map = dfc.write_calibration(small_convnet(), part, mapped, tmp_path / "map", "net")
    a_mem, a_map = np.load(p_mem), np.load(p_map)
    assert a_map.shape == (6, 16, 16, 3)  # NHWC, one frame per sample
    np.testing.assert_array_equal(a_map, a_mem)
