"""Atomic file writes: a file is either wholly written or not there (no half-written outputs)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import OutputError


def _umask() -> int:
    """The process umask (read from /proc where possible: os.umask() briefly changes it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Fail early, before long work, if ``path`` clearly cannot be written.

    Raises :class:`~hailo_ort.errors.OutputError` if ``path`` is a folder, a parent on the way
    is a file, or the nearest existing folder is not writable. (The write itself can still fail,
    e.g. on a full disk; :func:`write_bytes_atomic` reports that.)
    """
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder (give a file name)")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: no permission to write in {folder}")
    return target


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    The file gets the permissions an ordinary ``open(path, "w")`` would give it (an existing
    file's mode is kept; a new one is 0666 less the umask), not the temporary file's 0600.
    Raises :class:`~hailo_ort.errors.OutputError` (also an ``OSError``) naming ``path`` and the
    reason when it cannot be written.
    """
    target = check_writable(path)
    try:
        return _write_bytes_atomic(target, data)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.filename and Path(exc.filename).name.startswith(f".{target.name}."):
            reason += f" (creating a temporary file in {target.parent or '.'})"
        raise OutputError(f"cannot write {path}: {reason}") from exc


def _write_bytes_atomic(target: Path, data: bytes) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = target.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))
