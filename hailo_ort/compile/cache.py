"""Content-addressed cache of compiled partitions.

The key is a sha256 over the model bytes, the partition, the arch, the compile options
(calibration digest included) and the tool-chain version. An entry is a JSON file (the
CompiledPartition's metadata and the payload's sha256) and a payload file (HEF or emulation
model), both written atomically. A corrupt entry (unreadable JSON, missing payload, hash
mismatch) is reported as a miss, removed, and rebuilt by the caller.

Location: ``$HAILO_ORT_CACHE_DIR``, else ``$XDG_CACHE_HOME/hailo-ort``, else
``~/.cache/hailo-ort``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from ..fileio import write_bytes_atomic, write_text_atomic
from ..hailoop.reader import partition_from_dict, payload_sha256
from ..hailoop.types import CompiledPartition, StreamSpec
from ..partition.types import Partition

log = logging.getLogger("hailo_ort.compile")

FORMAT = "hailo-ort-compile-cache/1"


def cache_dir() -> Path:
    """The user's compile cache folder."""
    env = os.environ.get("HAILO_ORT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "hailo-ort"


def cache_key(
    model_digest: bytes,
    partition: Partition,
    arch: str,
    options: dict[str, Any],
    toolchain: str,
) -> str:
    """sha256 hex digest identifying one compilation.

    ``model_digest`` is the sha256 digest of the serialized model, computed once by the caller
    for all of its partitions.
    """
    h = hashlib.sha256()
    h.update(FORMAT.encode())
    h.update(model_digest)
    meta = {
        "partition": partition.to_dict(),
        "arch": arch,
        "options": options,
        "toolchain": toolchain,
    }
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _payload(cp: CompiledPartition) -> tuple[str, bytes]:
    if cp.hef is not None:
        return "hef", cp.hef
    if cp.emulation is not None:
        return "emulation", cp.emulation
    raise ValueError("compiled partition has neither a HEF nor an emulation model")


class CompileCache:
    """Compiled partitions on disk, by :func:`cache_key`. ``enabled=False`` makes every
    lookup a miss and stores nothing (``--no-cache``)."""

    def __init__(self, root: str | os.PathLike[str] | None = None, enabled: bool = True):
        self.root = Path(root) if root is not None else cache_dir()
        self.enabled = enabled

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.json", folder / f"{key}.bin"

    def get(self, key: str) -> CompiledPartition | None:
        """The cached partition, or None (missing, disabled, or corrupt: then removed)."""
        if not self.enabled:
            return None
        meta_path, payload_path = self._paths(key)
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("format") != FORMAT or meta.get("key") != key:
                raise ValueError("unknown format or key")
            payload = payload_path.read_bytes()
            if payload_sha256(payload) != meta["payload_sha256"]:
                raise ValueError("payload hash mismatch")
            cp = CompiledPartition(
                partition=partition_from_dict(meta["partition"]),
                arch=meta["arch"],
                backend=meta["backend"],
                inputs=[StreamSpec.from_dict(s) for s in meta["inputs"]],
                outputs=[StreamSpec.from_dict(s) for s in meta["outputs"]],
                toolchain=dict(meta.get("toolchain", {})),
                report=dict(meta.get("report", {})),
            )
            if meta["payload_kind"] == "hef":
                cp.hef = payload
            else:
                cp.emulation = payload
            return cp
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("compile cache entry %s is corrupt (%s): rebuilding it", key[:12], exc)
            self.remove(key)
            return None

    def put(self, key: str, cp: CompiledPartition) -> None:
        """Store ``cp`` under ``key`` (payload first, then the metadata that points at it)."""
        if not self.enabled:
            return
        kind, payload = _payload(cp)
        meta_path, payload_path = self._paths(key)
        meta = {
            "format": FORMAT,
            "key": key,
            "partition": cp.partition.to_dict(),
            "arch": cp.arch,
            "backend": cp.backend,
            "inputs": [s.to_dict() for s in cp.inputs],
            "outputs": [s.to_dict() for s in cp.outputs],
            "toolchain": cp.toolchain,
            "report": cp.report,
            "payload_kind": kind,
            "payload_sha256": payload_sha256(payload),
            "payload_size": len(payload),
        }
        try:
            write_bytes_atomic(payload_path, payload)
            write_text_atomic(meta_path, json.dumps(meta, indent=1, default=str))
        except OSError as exc:  # a read-only or full cache must not fail the compilation
            log.warning("cannot write the compile cache at %s: %s", self.root, exc)

    def remove(self, key: str) -> None:
        for path in self._paths(key):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("cannot remove cache file %s: %s", path, exc)
