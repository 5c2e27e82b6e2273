"""Calibration data: from a folder of images, an .npz / .npy file, feeds, or (explicitly) random.

Whatever the source, :func:`load_calibration` returns a list of feeds ``{input name: array}``
of the full model's inputs, each array shaped exactly as that input. Bad data raises
:class:`~hailo_ort.errors.CalibrationError` naming the input and the shape it expects.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import onnx

from ..errors import CalibrationError
from ..graph.shapes import model_inputs as real_inputs

#: Fewer samples than this draw a warning (the Hailo model zoo calibrates with 1,024+).
RECOMMENDED_SAMPLES = 256
#: A compressed .npz holding more than this (uncompressed) draws a warning: it is read whole.
COMPRESSED_NPZ_WARN_BYTES = 256 * 1024 * 1024
#: Samples made by ``calibration="random"``.
RANDOM_SAMPLES = 64
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)

CalibrationSource = Union[str, "os.PathLike[str]", np.ndarray, Mapping[str, Any], Iterable[Any]]


class CalibrationWarning(UserWarning):
    """Calibration data that works but will quantize poorly (random, or too few samples)."""


InputSpecs = Mapping[str, tuple[Sequence[int], str]]


def model_inputs(model: onnx.ModelProto) -> dict[str, tuple[list[int], str]]:
    """The model's real inputs (not initializers): name → (static shape, numpy dtype name)."""
    specs: dict[str, tuple[list[int], str]] = {}
    for vi in real_inputs(model.graph):
        tt = vi.type.tensor_type
        shape = [int(d.dim_value) if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
        specs[vi.name] = (shape, dtype)
    return specs


def _expect(name: str, shape: Sequence[int]) -> str:
    return f"input {name!r} expects samples shaped {list(shape)}"


def _check_dtype(name: str, arr: np.ndarray, dtype: str) -> np.ndarray:
    want = np.dtype(dtype)
    if arr.dtype.kind not in "fiub" or (arr.dtype.kind == "b" and want.kind != "b"):
        raise CalibrationError(
            f"calibration data for input {name!r} is {arr.dtype}; the input is {want.name}"
        )
    if want.kind in "iu" and arr.dtype.kind == "f":
        raise CalibrationError(
            f"calibration data for input {name!r} is {arr.dtype}; the input is {want.name} "
            "(integer data expected)"
        )
    return arr.astype(want, copy=False)


def split_samples(name: str, data: Any, shape: Sequence[int], dtype: str) -> list[np.ndarray]:
    """Samples of one input from an array: ``[N, *shape]``, ``[N, *shape[1:]]`` (batch 1) or
    exactly ``shape`` (one sample)."""
    arr = np.asarray(data)
    shape = tuple(int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise CalibrationError(f"input {name!r} has a dynamic shape {list(shape)}: fix it first")
    arr = _check_dtype(name, arr, dtype)
    if arr.shape == shape:
        return [arr]
    if arr.ndim == len(shape) + 1 and arr.shape[1:] == shape:
        return [arr[i] for i in range(arr.shape[0])]
    if shape and shape[0] == 1 and arr.ndim == len(shape) and arr.shape[1:] == shape[1:]:
        return [arr[i : i + 1] for i in range(arr.shape[0])]
    hint = ""
    if len(shape) == 4 and arr.ndim in (3, 4):
        _, c, h, w = shape
        if arr.shape[-3:] == (h, w, c):
            hint = " (the data looks NHWC; the model input is NCHW: transpose it)"
    raise CalibrationError(
        f"calibration data for input {name!r} has shape {list(arr.shape)}; "
        f"{_expect(name, shape)} (give an array [N, {', '.join(map(str, shape))}]"
        f"{' or [N, ' + ', '.join(map(str, shape[1:])) + ']' if shape and shape[0] == 1 else ''})"
        f"{hint}"
    )


def _zip_inputs(per_input: dict[str, list[np.ndarray]]) -> list[dict[str, np.ndarray]]:
    counts = {k: len(v) for k, v in per_input.items()}
    if len(set(counts.values())) > 1:
        raise CalibrationError(f"calibration inputs have different sample counts: {counts}")
    n = next(iter(counts.values()), 0)
    return [{k: v[i] for k, v in per_input.items()} for i in range(n)]


def _check_names(keys: Iterable[str], inputs: InputSpecs, where: str) -> None:
    keys = list(keys)
    unknown = [k for k in keys if k not in inputs]
    if unknown:
        raise CalibrationError(
            f"{where}: unknown input {unknown[0]!r}; the model's inputs are "
            + ", ".join(f"{n!r} {list(s)}" for n, (s, _) in inputs.items())
        )
    missing = [n for n in inputs if n not in keys]
    if missing:
        name = missing[0]
        raise CalibrationError(
            f"{where}: no data for input {name!r}; {_expect(name, inputs[name][0])}"
        )


def from_arrays(
    arrays: Mapping[str, Any], inputs: InputSpecs, where: str = "calibration"
) -> list[dict[str, np.ndarray]]:
    """Feeds from ``{input name: [N, ...] array}``."""
    _check_names(arrays.keys(), inputs, where)
    return _zip_inputs({n: split_samples(n, arrays[n], inputs[n][0], inputs[n][1]) for n in inputs})


def from_feeds(feeds: Iterable[Any], inputs: InputSpecs) -> list[dict[str, np.ndarray]]:
    """Validate an iterable of feeds (dicts input name → array, one or more samples each)."""
    out: list[dict[str, np.ndarray]] = []
    for i, feed in enumerate(feeds):
        if not isinstance(feed, Mapping):
            if len(inputs) == 1 and isinstance(feed, np.ndarray):
                feed = {next(iter(inputs)): feed}
            else:
                raise CalibrationError(
                    f"calibration sample {i} is a {type(feed).__name__}, not a dict of "
                    f"input name → array (inputs: {list(inputs)})"
                )
        out.extend(from_arrays(feed, inputs, where=f"calibration sample {i}"))
    return out


def _image_layout(name: str, shape: Sequence[int]) -> tuple[str, int, int, int]:
    if len(shape) != 4 or shape[0] != 1:
        raise CalibrationError(
            f"calibration images need an image input [1, C, H, W] or [1, H, W, C]; "
            f"input {name!r} is {list(shape)}: use an .npy / .npz file"
        )
    _, a, b, c = (int(d) for d in shape)
    if a in (1, 3):
        return "NCHW", a, b, c
    if c in (1, 3):
        return "NHWC", c, a, b
    raise CalibrationError(
        f"input {name!r} {list(shape)} has no 1- or 3-channel axis: images cannot be fed to it"
    )


class ImageFeeds(Sequence[dict[str, np.ndarray]]):
    """Calibration feeds of decoded images, held as 8-bit pixels (a quarter of the memory of
    float32 feeds) and scaled to float when read."""

    def __init__(self, name: str, pixels: list[np.ndarray], scale: float, dtype: str) -> None:
        self.name = name
        self._pixels = pixels
        self.scale = float(scale)
        self.dtype = dtype

    def __len__(self) -> int:
        return len(self._pixels)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return ImageFeeds(self.name, self._pixels[index], self.scale, self.dtype)
        sample = (self._pixels[index].astype(np.float32) * np.float32(self.scale))[None]
        return {self.name: _check_dtype(self.name, sample, self.dtype)}


def from_images(
    folder: Path,
    inputs: InputSpecs,
    *,
    scale: float,
    limit: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Sequence[dict[str, np.ndarray]]:
    """Feeds from the images in ``folder`` (sorted by name), resized to the input and scaled
    by ``scale`` (1.0: pixel values 0..255; 1/255: 0..1), as an :class:`ImageFeeds`."""
    if len(inputs) != 1:
        raise CalibrationError(
            f"a folder of images calibrates a single-input model; this model has inputs "
            f"{list(inputs)}: use an .npz keyed by input name"
        )
    name, (shape, dtype) = next(iter(inputs.items()))
    layout, channels, height, width = _image_layout(name, shape)
    try:
        from PIL import Image
    except ImportError:
        raise CalibrationError(
            "reading calibration images needs Pillow: pip install pillow"
        ) from None
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise CalibrationError(
            f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in calibration folder {folder}"
        )
    if limit is not None:
        files = files[:limit]
    pixel_list: list[np.ndarray] = []
    for done, path in enumerate(files):
        if on_progress is not None:
            on_progress(done, len(files))
        try:
            with Image.open(path) as img:
                img = img.convert("RGB" if channels == 3 else "L")
                img = img.resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(img, dtype=np.uint8)
        except Exception as exc:
            raise CalibrationError(f"cannot read calibration image {path}: {exc}") from exc
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if layout == "NCHW":
            pixels = np.transpose(pixels, (2, 0, 1))
        pixel_list.append(np.ascontiguousarray(pixels))
    if on_progress is not None:
        on_progress(len(files), len(files))
    feeds = ImageFeeds(name, pixel_list, scale, dtype)
    _ = feeds[0]  # the input's dtype is checked now, not at first use
    return feeds


def random_calibration(
    inputs: InputSpecs,
    n: int = RANDOM_SAMPLES,
    seed: int = 0,
    pixel_inputs: Iterable[str] = (),
    unit_inputs: Iterable[str] = (),
) -> list[dict[str, np.ndarray]]:
    """Random feeds (smoke tests only): pixel-like 0..255 for ``pixel_inputs``, uniform 0..1
    for ``unit_inputs`` (images scaled to 0..1), N(0, 1) else."""
    rng = np.random.default_rng(seed)
    pixel = set(pixel_inputs)
    unit = set(unit_inputs) - pixel
    feeds: list[dict[str, np.ndarray]] = [{} for _ in range(n)]
    for name, (shape, dtype) in inputs.items():
        if np.dtype(dtype).kind != "f":
            raise CalibrationError(
                f"random calibration cannot make data for the {dtype} input {name!r}: give real data"
            )
        if any(int(d) < 0 for d in shape):
            raise CalibrationError(
                f"input {name!r} has a dynamic shape {list(shape)}: fix it first"
            )
        for feed in feeds:
            if name in pixel:
                x = rng.integers(0, 256, size=shape).astype(dtype)
            elif name in unit:
                x = rng.random(size=shape).astype(dtype)
            else:
                x = rng.standard_normal(size=shape).astype(dtype)
            feed[name] = x
    return feeds


def load_calibration(
    source: CalibrationSource | None,
    inputs: InputSpecs,
    *,
    limit: int | None = None,
    pixel_inputs: Iterable[str] = (),
    unit_inputs: Iterable[str] = (),
    image_scale: float | None = None,
    random_samples: int = RANDOM_SAMPLES,
    seed: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
) -> Sequence[dict[str, np.ndarray]]:
    """Calibration feeds of the model's ``inputs`` (name → (shape, dtype)) from ``source``.

    ``source``: a folder of images, an ``.npz`` keyed by input name, an ``.npy`` (single-input
    models; it and an uncompressed ``.npz`` are memory-mapped), an array or ``{name: array}``
    (each ``[N, ...]``), an iterable of feeds, or the string ``"random"`` (with a warning; for
    smoke tests). ``pixel_inputs`` are inputs that
    the model normalises itself (it takes pixel values 0..255): images are fed to them as
    0..255 and to other inputs as 0..1, unless ``image_scale`` says otherwise; ``unit_inputs``
    are inputs the model normalises as 0..1 images (no warning; random data is 0..1). ``limit`` keeps
    the first N samples; ``on_progress(done, total)`` follows image decoding. Fewer than :data:`RECOMMENDED_SAMPLES` samples draw a warning.
    """
    if not inputs:
        raise CalibrationError("the model has no inputs to calibrate")
    if limit is not None and int(limit) <= 0:
        raise CalibrationError(
            f"the calibration limit must be a positive number of samples, got {limit} "
            "(None uses all of them; --calib-limit 0 on the command line)"
        )
    if source is None:
        raise CalibrationError(
            "calibration data is required: a folder of images, an .npy / .npz file "
            "(--calib DIR|FILE.npy|FILE.npz), or --calib random for a smoke test"
        )
    pixel = set(pixel_inputs)
    if isinstance(source, str) and source == "random":
        warnings.warn(
            f"random calibration data ({random_samples} samples): quantization ranges will "
            "not match real inputs; use it for smoke tests only",
            CalibrationWarning,
            stacklevel=2,
        )
        return random_calibration(inputs, random_samples, seed, pixel, unit_inputs)

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise CalibrationError(f"calibration data {path} does not exist")
        if path.is_dir():
            name = next(iter(inputs))
            if image_scale is None:
                image_scale = 1.0 if name in pixel else 1.0 / 255.0
                if name not in pixel and name not in set(unit_inputs):
                    warnings.warn(
                        f"feeding calibration images to {name!r} as 0..1 (the model has no "
                        "input normalisation that implies 0..255); if it takes 0..255 pass "
                        "--image-scale 1 (image_scale=1.0 in Python)",
                        CalibrationWarning,
                        stacklevel=2,
                    )
            feeds = from_images(
                path, inputs, scale=image_scale, limit=limit, on_progress=on_progress
            )
        elif path.suffix.lower() == ".npz":
            arrays = load_npz(path)
            feeds = from_arrays(arrays, inputs, where=str(path))
        elif path.suffix.lower() == ".npy":
            if len(inputs) != 1:
                raise CalibrationError(
                    f"{path}: an .npy holds one input but the model has inputs {list(inputs)}; "
                    "use an .npz keyed by input name"
                )
            try:
                # memory-mapped: samples are read from disk as they are used
                array = np.load(path, allow_pickle=False, mmap_mode="r")
            except Exception as exc:
                raise CalibrationError(
                    f"cannot read calibration file {path}: {_npy_problem(path, exc)}"
                ) from exc
            feeds = from_arrays({next(iter(inputs)): array}, inputs, where=str(path))
        else:
            raise CalibrationError(
                f"calibration data {path}: expected a folder of images, an .npy or an .npz file"
            )
    elif isinstance(source, np.ndarray):
        if len(inputs) != 1:
            raise CalibrationError(
                f"one array given but the model has inputs {list(inputs)}: give {{name: array}}"
            )
        feeds = from_arrays({next(iter(inputs)): source}, inputs)
    elif isinstance(source, Mapping):
        feeds = from_arrays(source, inputs)
    elif isinstance(source, Iterable):
        feeds = from_feeds(source, inputs)
    else:
        raise CalibrationError(f"unsupported calibration data of type {type(source).__name__}")

    if limit is not None:
        feeds = feeds[:limit]
    if not feeds:
        raise CalibrationError("the calibration data holds no samples")
    check_finite(feeds)
    if len(feeds) < RECOMMENDED_SAMPLES:
        warnings.warn(
            f"only {len(feeds)} calibration samples: use a few hundred or more for accurate "
            "quantization (the Hailo model zoo calibrates with 1,024+)",
            CalibrationWarning,
            stacklevel=2,
        )
    return feeds


_LOCAL_HEADER = struct.Struct("<4s5H3I2H")  # a zip member's local file header (30 bytes)


def load_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz``, keyed as :func:`numpy.load` keys them (member name without
    ``.npy``).

    Members stored uncompressed (``numpy.savez``) are memory-mapped read-only: their samples
    are read from disk as they are used. Compressed members (``numpy.savez_compressed``) cannot
    be mapped and are read whole, with a :class:`CalibrationWarning` when they hold more than
    :data:`COMPRESSED_NPZ_WARN_BYTES`. Mapped members are not CRC-checked (that would read
    them whole). Object (pickled) arrays are refused. A file or member that cannot be read
    raises :class:`~hailo_ort.errors.CalibrationError` naming both.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    try:
        with open(path, "rb") as f, zipfile.ZipFile(f) as zf:
            size = os.fstat(f.fileno()).st_size
            infos = [zf.getinfo(name) for name in dict.fromkeys(zf.namelist())]
            infos = [i for i in infos if not i.is_dir()]
            packed = sum(i.file_size for i in infos if i.compress_type != zipfile.ZIP_STORED)
            if packed > COMPRESSED_NPZ_WARN_BYTES:
                warnings.warn(
                    f"{path} is a compressed .npz ({packed / 2**20:.0f} MB uncompressed): it "
                    "is read whole into memory; save it with numpy.savez (uncompressed) or as "
                    "one .npy per input so it can be memory-mapped",
                    CalibrationWarning,
                    stacklevel=3,
                )
            for info in infos:
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                try:
                    if info.flag_bits & 0x1:
                        raise _MemberError("is encrypted")
                    array = None
                    if info.compress_type == zipfile.ZIP_STORED:
                        array = _map_stored_member(path, f, size, info)
                    if array is None:
                        with zf.open(info) as member:
                            array = _read_member(member)
                    arrays[key] = array
                except _MemberError as exc:
                    raise CalibrationError(
                        f"cannot read calibration file {path}: member {info.filename!r} {exc}"
                    ) from None
                except (
                    OSError,
                    ValueError,
                    EOFError,
                    RuntimeError,  # zipfile: encrypted
                    NotImplementedError,  # zipfile: unknown compression method
                    zipfile.BadZipFile,
                    zlib.error,
                ) as exc:
                    raise CalibrationError(
                        f"cannot read calibration file {path}: member {info.filename!r}: {exc}"
                    ) from exc
    except zipfile.BadZipFile as exc:
        raise CalibrationError(
            f"cannot read calibration file {path}: not a valid .npz (zip) archive: {exc}"
        ) from exc
    except OSError as exc:
        raise CalibrationError(f"cannot read calibration file {path}: {exc}") from exc
    return arrays


class _MemberError(Exception):
    """What is wrong with one .npz member (completed with the file and member names)."""


def _read_npy_header(fp: Any) -> tuple[tuple[int, ...], bool, np.dtype, bool]:
    """(shape, fortran order, dtype, header understood) of the .npy at ``fp``'s position.

    ``header understood`` is False for format versions other than 1.0 / 2.0 (then nothing
    past the magic has been read)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
    except ValueError:
        raise _MemberError("is not a .npy array (save arrays with numpy.savez)") from None
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, fortran, dtype = fmt.read_array_header_2_0(fp)
    else:
        return (), False, np.dtype(np.uint8), False
    if dtype.hasobject:
        raise _MemberError("holds Python objects (a pickled array), not a numeric array")
    return tuple(shape), bool(fortran), dtype, True


def _read_member(fp: Any) -> np.ndarray:
    """Read one member whole (compressed, or a .npy format version numpy maps no header of),
    refusing pickles."""
    if fp.read(6) != b"\x93NUMPY":
        raise _MemberError("is not a .npy array (save arrays with numpy.savez)")
    fp.seek(0)
    try:
        return np.lib.format.read_array(fp, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise _MemberError(
                "holds Python objects (a pickled array), not a numeric array"
            ) from None
        raise


def _map_stored_member(path: Path, f: Any, size: int, info: zipfile.ZipInfo) -> np.ndarray | None:
    """Memory-map one uncompressed member (None: a .npy format version to read whole). Its
    data start comes from its local header, whose extra field may differ from the central
    directory's (numpy writes a zip64 one only there)."""
    f.seek(info.header_offset)
    raw = f.read(_LOCAL_HEADER.size)
    if len(raw) < _LOCAL_HEADER.size:
        raise _MemberError("is truncated (its local header lies past the end of the file)")
    sig, _, _, method, _, _, _, _, _, name_len, extra_len = _LOCAL_HEADER.unpack(raw)
    if sig != b"PK\x03\x04":
        raise _MemberError("has no valid local header (the archive is corrupt)")
    if method != zipfile.ZIP_STORED:
        raise _MemberError("has a local header that disagrees with the archive's directory")
    start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
    if start + info.file_size > size:
        raise _MemberError(
            f"is truncated ({info.file_size} bytes from offset {start}; the file has {size})"
        )
    f.seek(start)
    shape, fortran, dtype, understood = _read_npy_header(f)
    if not understood:
        return None
    offset = f.tell()
    nbytes = math.prod(shape) * dtype.itemsize
    if offset - start + nbytes > info.file_size:
        raise _MemberError(
            f"is truncated: its header describes {list(shape)} {dtype} ({nbytes} bytes) but "
            f"the member holds {info.file_size - (offset - start)} bytes of data"
        )
    if nbytes == 0:
        return np.zeros(shape, dtype)
    return np.memmap(
        path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C"
    )


def _npy_problem(path: Path, exc: Exception) -> str:
    """What is wrong with an .npy file numpy would not load (not numpy's pickle advice)."""
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError:
        return str(exc)
    if magic != b"\x93NUMPY":
        return "not a .npy array file (save arrays with numpy.save)"
    if "pickle" in str(exc):
        return "it holds Python objects, not a numeric array"
    return str(exc)


def check_finite(feeds: Sequence[Mapping[str, np.ndarray]]) -> None:
    """Raise CalibrationError naming the input and sample holding a NaN or an infinity."""
    for i, feed in enumerate(feeds):
        for name, arr in feed.items():
            a = np.asarray(arr)
            if a.dtype.kind in "fc" and not np.isfinite(a).all():
                what = "NaN" if np.isnan(a).any() else "an infinite value"
                raise CalibrationError(
                    f"calibration sample {i} of input {name!r} holds {what}: quantization "
                    "ranges need finite data"
                )


def calibration_digest(feeds: Sequence[Mapping[str, np.ndarray]]) -> str:
    """sha256 over the feeds' names, shapes, dtypes and bytes (for the compile cache key)."""
    h = hashlib.sha256()
    h.update(str(len(feeds)).encode())
    for feed in feeds:
        for name in sorted(feed):
            arr = np.ascontiguousarray(feed[name])
            h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
            h.update(arr.tobytes())
    return h.hexdigest()
