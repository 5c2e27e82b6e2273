"""The content-addressed compile cache: hit, miss, key sensitivity, corruption."""

from __future__ import annotations

import hashlib
import json

import pytest
from compile_models import convnet_partition

from hailo_ort.compile.cache import CompileCache, cache_dir, cache_key
from hailo_ort.hailoop.types import CompiledPartition, StreamSpec
from hailo_ort.quant import QuantInfo


def _cp(payload: bytes = b"emulation-model-bytes") -> CompiledPartition:
    return CompiledPartition(
        partition=convnet_partition(),
        arch="hailo8l",
        backend="emulate",
        inputs=[StreamSpec("n/xn", "xn", [1, 3, 16, 16], device_shape=[1, 16, 16, 3])],
        outputs=[
            StreamSpec(
                "n/logits",
                "logits",
                [1, 10],
                device_shape=[1, 10],
                device_order="NC",
                host_order="NC",
                quant=QuantInfo(zp=85, scale=0.02, limvals_min=-1.7, limvals_max=3.4),
            )
        ],
        emulation=payload,
        toolchain={"tool": "hailo-ort emulation"},
        report={"accuracy": {"logits": {"cosine": 0.999, "snr_db": float("inf")}}},
    )


def _key(**over) -> str:
    args = {
        "model_digest": hashlib.sha256(b"model").digest(),
        "partition": convnet_partition(),
        "arch": "hailo8l",
        "options": {"backend": "emulate", "calibration": "abc", "optimization_level": 2},
        "toolchain": "emu 1",
    }
    args.update(over)
    return cache_key(**args)


def test_key_changes_with_every_input() -> None:
    base = _key()
    assert base == _key()
    assert len(base) == 64
    others = {
        _key(model_digest=hashlib.sha256(b"model2").digest()),
        _key(partition=convnet_partition("features")),
        _key(arch="hailo8"),
        _key(options={"backend": "emulate", "calibration": "abd", "optimization_level": 2}),
        _key(toolchain="emu 2"),
    }
    assert base not in others and len(others) == 5


def test_miss_then_hit_roundtrip(tmp_path) -> None:
    cache = CompileCache(tmp_path)
    key = _key()
    assert cache.get(key) is None
    cache.put(key, _cp())
    got = cache.get(key)
    assert got is not None
    assert got.emulation == b"emulation-model-bytes" and got.hef is None
    assert got.partition == convnet_partition()
    assert got.outputs[0].quant.zp == 85 and got.outputs[0].device_order == "NC"
    assert got.report["accuracy"]["logits"]["snr_db"] == float("inf")
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_hef_payload(tmp_path) -> None:
    cache = CompileCache(tmp_path)
    cp = _cp()
    cp.emulation, cp.hef, cp.backend = None, b"\x01HEF...", "dfc"
    cache.put("ab" * 32, cp)
    got = cache.get("ab" * 32)
    assert got.hef == b"\x01HEF..." and got.emulation is None and got.backend == "dfc"


@pytest.mark.parametrize("damage", ["payload", "json", "missing_payload", "key"])
def test_corrupt_entry_is_a_miss_and_removed(tmp_path, damage, caplog) -> None:
    cache = CompileCache(tmp_path)
    key = _key()
    cache.put(key, _cp())
    meta = next(tmp_path.rglob("*.json"))
    payload = next(tmp_path.rglob("*.bin"))
    if damage == "payload":
        payload.write_bytes(b"emulation-model-bytez")
    elif damage == "json":
        meta.write_text("{not json")
    elif damage == "missing_payload":
        payload.unlink()
    else:
        d = json.loads(meta.read_text())
        d["key"] = "0" * 64
        meta.write_text(json.dumps(d))
    with caplog.at_level("WARNING", logger="hailo_ort.compile"):
        assert cache.get(key) is None
    assert "corrupt" in caplog.text
    assert not meta.exists()
    cache.put(key, _cp())  # rebuilt
    assert cache.get(key).emulation == b"emulation-model-bytes"


def test_disabled_cache_stores_nothing(tmp_path) -> None:
    cache = CompileCache(tmp_path, enabled=False)
    cache.put(_key(), _cp())
    assert cache.get(_key()) is None
    assert not list(tmp_path.iterdir())


def test_cache_dir_from_env(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HAILO_ORT_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("HAILO_ORT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "hailo-ort"
