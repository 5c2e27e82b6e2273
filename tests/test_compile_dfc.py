"""The DFC driver, run against the fake hailo_sdk_client in tests/fake_hailo_sdk_client.

The worker runs in a subprocess of this interpreter (standing in for the DFC's Python) with the
fake on its PYTHONPATH; the fake's compile() returns the bytes of a real HEF fixture.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from compile_models import (
    arcface_feeds,
    arcface_like,
    arcface_normalization,
    arcface_partition,
)
from conftest import REPO_ROOT, SHARED_FIXTURES

from hailo_ort.compile import dfc
from hailo_ort.errors import CompileError
from hailo_ort.partition.types import Normalization
from hailo_ort.quant import QuantInfo

FAKE_DIR = Path(__file__).parent / "fake_hailo_sdk_client"
HEF_FIXTURE = "hef/arcface_mobilefacenet_hailo8_v1.hef"


def hef_fixture() -> Path:
    """The real arcface HEF: ../shared/fixtures from a checkout, ../../shared from a worktree."""
    for base in (SHARED_FIXTURES, REPO_ROOT.parent.parent / "shared" / "fixtures"):
        if (base / HEF_FIXTURE).exists():
            return base / HEF_FIXTURE
    pytest.skip(f"shared fixture {HEF_FIXTURE} not found (../shared/fixtures is absent)")


@pytest.fixture
def fake_dfc(tmp_path, monkeypatch):
    """Configure the fake DFC; returns (configure(**cfg) -> env, record path)."""
    hef = hef_fixture()
    record = tmp_path / "record.json"
    monkeypatch.delenv("HAILO_DFC_PYTHON", raising=False)

    def configure(**cfg):
        cfg.setdefault("hef", str(hef))
        cfg.setdefault("record", str(record))
        path = tmp_path / "fake_config.json"
        path.write_text(json.dumps(cfg))
        return dict(os.environ, PYTHONPATH=str(FAKE_DIR), FAKE_DFC_CONFIG=str(path))

    return SimpleNamespace(configure=configure, record=record, hef=hef)


def _job(tmp_path, partition=None, script=None, level=2):
    return dfc.prepare_job(
        arcface_like(),
        partition or arcface_partition(),
        arcface_feeds(3),
        "hailo8l",
        tmp_path / "work",
        normalizations=[arcface_normalization()],
        model_script=script,
        optimization_level=level,
    )


def test_worker_runs_all_stages_with_the_fake(tmp_path, fake_dfc) -> None:
    env = fake_dfc.configure()
    job = _job(tmp_path, script="performance_param(compiler_optimization_level=max)")
    events = []
    result = dfc.run_worker(job, sys.executable, tmp_path / "work", env=env, on_event=events.append)
    assert result.hef == fake_dfc.hef.read_bytes()
    assert result.end_node_names == ["BatchNormalization_96"]
    assert result.recommendation is None
    assert result.dfc_version == "3.99.0+fake"
    # what the DFC prints on stdout goes to the log, not into the event channel
    assert "Starting Model Optimization" in result.log_path.read_text()
    stages = [e["stage"] for e in events if e["event"] == "stage" and e["status"] == "done"]
    assert stages == ["load", "parse", "script", "optimize", "compile"]
    rec = json.loads(fake_dfc.record.read_text())
    assert rec["hw_arch"] == "hailo8l"
    (call,) = rec["translate"]
    assert call["start"] == ["Conv_2"] and call["end"] == ["BatchNormalization_96"]
    assert call["shapes"] == {"xn": [1, 3, 112, 112]}  # what the start node reads
    (script,) = rec["scripts"]
    lines = script.splitlines()
    assert lines[0] == "normalization1 = normalization([127.5, 127.5, 127.5], [128, 128, 128])"
    assert "performance_param(compiler_optimization_level=max)" in lines
    assert lines[-1] == "model_optimization_flavor(optimization_level=2)"
    assert rec["calib"] == {"input_layer1": [3, 112, 112, 3]}  # NHWC, raw (DFC normalises)
    calib = np.load(job["calib"])
    feeds = arcface_feeds(3)
    np.testing.assert_array_equal(calib[1], np.transpose(feeds[1]["x"][0], (1, 2, 0)))


def test_recommendation_retry(tmp_path, fake_dfc) -> None:
    env = fake_dfc.configure(fail="recommend", recommend=["MatMul_95"])
    job = _job(tmp_path)
    result = dfc.run_worker(job, sys.executable, tmp_path / "work", env=env)
    assert result.end_node_names == ["MatMul_95"]
    assert result.recommendation["original"] == ["BatchNormalization_96"]
    rec = json.loads(fake_dfc.record.read_text())
    assert [c["end"] for c in rec["translate"]] == [["BatchNormalization_96"], ["MatMul_95"]]
    # the partition is cut at the recommended end node; BatchNormalization goes to the CPU
    cut = dfc.shrink_partition(arcface_like(), arcface_partition(), result.end_node_names)
    assert cut.nodes[-1] == "MatMul_95" and "BatchNormalization_96" not in cut.nodes
    assert [t.name for t in cut.outputs] == ["mm"] and cut.outputs[0].shape == [1, 512]
    assert [t.name for t in cut.inputs] == ["x"]


def test_recommendation_outside_partition_is_an_error() -> None:
    with pytest.raises(CompileError, match="outside partition"):
        dfc.shrink_partition(arcface_like(), arcface_partition(), ["Mul_97"])


@pytest.mark.parametrize(
    ("cfg", "pattern"),
    [
        (
            {"fail": "recommend_always", "recommend": ["MatMul_95"]},
            r"its recommendation: \['MatMul_95'\]",
        ),
        ({"fail": "unsupported", "node": "Conv_2"}, r"cannot translate node 'Conv_2'"),
        (
            {"fail": "allocation", "node": "Relu_3"},
            r"resource allocation failed.*|at node 'Relu_3'",
        ),
        ({"fail": "crash"}, r"exited with code 134.*Fatal Python error"),
    ],
)
def test_dfc_errors_are_mapped(tmp_path, fake_dfc, cfg, pattern) -> None:
    env = fake_dfc.configure(**cfg)
    job = _job(tmp_path)
    with pytest.raises(CompileError, match=pattern) as info:
        dfc.run_worker(job, sys.executable, tmp_path / "work", env=env)
    assert str(tmp_path / "work" / "dfc.log") in str(info.value)
    assert (tmp_path / "work" / "dfc.log").exists()  # the log is kept


def test_allocation_error_names_node(tmp_path, fake_dfc) -> None:
    env = fake_dfc.configure(fail="allocation", node="Relu_3")
    with pytest.raises(
        CompileError, match="could not fit the partition on hailo8l at node 'Relu_3'"
    ):
        dfc.run_worker(_job(tmp_path), sys.executable, tmp_path / "work", env=env)


def test_misspelled_node(tmp_path, fake_dfc) -> None:
    env = fake_dfc.configure()
    part = arcface_partition()
    part.end_nodes = ["BatchNorm_96"]
    job = _job(tmp_path, partition=part)
    with pytest.raises(CompileError, match=r"node name was not found.*BatchNorm_96"):
        dfc.run_worker(job, sys.executable, tmp_path / "work", env=env)


def test_timeout_stops_the_worker(tmp_path, fake_dfc) -> None:
    env = fake_dfc.configure(fail="sleep", seconds=60)
    t0 = time.time()
    with pytest.raises(CompileError, match="did not finish within 3 s"):
        dfc.run_worker(_job(tmp_path), sys.executable, tmp_path / "work", env=env, timeout=3)
    assert time.time() - t0 < 20


def test_dfc_not_importable(tmp_path, fake_dfc) -> None:
    env = fake_dfc.configure()
    env.pop("PYTHONPATH")
    events = []
    with pytest.raises(CompileError, match=r"cannot import hailo_sdk_client.*--dfc-python"):
        dfc.run_worker(
            _job(tmp_path), sys.executable, tmp_path / "work", env=env, on_event=events.append
        )
    assert [e.get("status") for e in events if e["event"] == "stage"] == ["start"]


def test_find_dfc_python(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("HAILO_DFC_PYTHON", raising=False)
    if "hailo_sdk_client" not in sys.modules:
        import importlib.util

        if importlib.util.find_spec("hailo_sdk_client") is None:
            assert dfc.find_dfc_python() is None
            with pytest.raises(CompileError, match="HAILO_DFC_PYTHON"):
                dfc.require_dfc_python()
    assert dfc.find_dfc_python(sys.executable) == sys.executable
    monkeypatch.setenv("HAILO_DFC_PYTHON", sys.executable)
    assert dfc.find_dfc_python() == sys.executable
    with pytest.raises(CompileError, match="not an executable"):
        dfc.find_dfc_python(tmp_path / "no-python")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    assert dfc.find_dfc_python(venv) == str(venv / "bin" / "python")


def test_model_script_keeps_user_flavor() -> None:
    script = dfc.build_model_script(
        [Normalization("x", [0.0], [255.0], ["n"])],
        "model_optimization_flavor(optimization_level=0, compression_level=1)",
        optimization_level=3,
    )
    assert script.count("model_optimization_flavor") == 1
    assert "optimization_level=0" in script
    assert script.startswith("normalization1 = normalization([0], [255])")


def test_normalization_parsed_by_dfc_is_not_doubled() -> None:
    part = arcface_partition()
    part.start_nodes = ["Sub_0"]
    assert dfc.partition_normalizations(part, [arcface_normalization()]) == []
    assert dfc.partition_normalizations(arcface_partition(), [arcface_normalization()])


def _vstream(name, shape, order, quant, original):
    return SimpleNamespace(
        name=name,
        shape=shape,
        format_order=order,
        format_type="UINT8",
        quant=quant,
        original_names=original,
    )


def test_streams_from_hef_maps_by_original_names() -> None:
    """Two outputs listed in the opposite order are matched by their original node names."""
    model = arcface_like()
    part = dfc.shrink_partition(model, arcface_partition(), ["BatchNormalization_96"])
    part.outputs = [part.outputs[0], dfc._spec("r", {v.name: v for v in model.graph.value_info})]
    q1, q2, q3 = QuantInfo(zp=1), QuantInfo(zp=2), QuantInfo(zp=3)
    hef = SimpleNamespace(
        network_groups=[
            SimpleNamespace(
                inputs=[_vstream("net/input_layer1", (112, 112, 3), "NHWC", q1, ["norm1"])],
                outputs=[
                    _vstream("net/conv1", (14, 14, 8), 1, q2, ["Conv_2", "Relu_3"]),
                    _vstream("net/fc1", (512,), "NC", q3, ["MatMul_95", "BatchNormalization_96"]),
                ],
            )
        ]
    )
    ins, outs = dfc.streams_from_hef(hef, model, part)
    assert [(s.vstream, s.tensor) for s in ins] == [("net/input_layer1", "x")]
    assert ins[0].device_shape == [1, 112, 112, 3] and ins[0].quant.zp == 1
    assert [(s.vstream, s.tensor) for s in outs] == [("net/fc1", "fc1"), ("net/conv1", "r")]
    assert outs[0].device_shape == [1, 512] and outs[0].device_order == "NC"
    assert outs[1].device_shape == [1, 14, 14, 8] and outs[1].device_order == "NHWC"
    assert outs[1].host_order == "NCHW"


def test_streams_from_hef_shape_mismatch() -> None:
    model = arcface_like()
    hef = SimpleNamespace(
        network_groups=[
            SimpleNamespace(
                inputs=[_vstream("net/in", (64, 64, 3), "NHWC", QuantInfo(), [])],
                outputs=[_vstream("net/fc1", (1, 1, 512), "NC", QuantInfo(), [])],
            )
        ]
    )
    with pytest.raises(CompileError, match=r"net/in is 64x64x3.*'x'"):
        dfc.streams_from_hef(hef, model, arcface_partition())


def test_compile_partition_with_fake_dfc_and_real_hef(tmp_path, fake_dfc) -> None:
    env = fake_dfc.configure()
    cp = dfc.compile_partition_dfc(
        arcface_like(),
        arcface_partition(),
        arcface_feeds(4),
        "hailo8",
        normalizations=[arcface_normalization()],
        dfc_python=sys.executable,
        env=env,
    )
    assert cp.backend == "dfc" and cp.hef == fake_dfc.hef.read_bytes()
    assert [s.vstream for s in cp.inputs] == ["arcface_mobilefacenet/input_layer1"]
    assert [s.vstream for s in cp.outputs] == ["arcface_mobilefacenet/fc1"]
    assert cp.outputs[0].quant.zp == 144 and cp.outputs[0].device_shape == [1, 512]


def test_real_dfc_integration(tmp_path) -> None:
    import importlib.util

    spec = importlib.util.find_spec("hailo_sdk_client")
    if spec is None or str(FAKE_DIR) in str(spec.origin):
        pytest.skip("the real Hailo Dataflow Compiler (hailo_sdk_client) is not installed here")
    from compile_models import convnet_partition, image_feeds, small_convnet

    cp = dfc.compile_partition_dfc(
        small_convnet(),
        convnet_partition("features"),
        image_feeds(64),
        "hailo8",
        optimization_level=0,
    )
    assert cp.hef and cp.hef[:4] == b"\x01HEF"


def test_dfc_worker_parses_as_python_3_8():
    """The worker runs inside the DFC's own (older) Python: its syntax must stay 3.8-compatible."""
    import ast

    import hailo_ort.compile.dfc_worker as worker

    source = Path(worker.__file__).read_text(encoding="utf-8")
    ast.parse(source, feature_version=(3, 8))
    assert "from __future__ import annotations" in source or " | " not in source


def test_failure_after_the_worker_drops_the_calibration_set(tmp_path, fake_dfc) -> None:
    # Before: when reading the HEF (after the worker) failed, calib_*.npy stayed in the folder.
    garbage = tmp_path / "garbage.hef"
    garbage.write_bytes(b"not a HEF at all" * 8)
    env = fake_dfc.configure(hef=str(garbage))
    work = tmp_path / "work"
    with pytest.raises(CompileError, match="cannot be read"):
        dfc.compile_partition_dfc(
            arcface_like(),
            arcface_partition(),
            arcface_feeds(4),
            "hailo8",
            normalizations=[arcface_normalization()],
            dfc_python=sys.executable,
            env=env,
            workdir=work,
        )
    assert (work / "dfc.log").is_file()  # kept for a rerun
    assert list(work.glob("calib_*.npy")) == []


def test_hef_streams_of_a_batch_4_partition_are_per_frame() -> None:
    # Before: a partition compiled at batch 4 was refused ("HEF vstream ... is 112x112x3 but
    # the partition tensor 'x' is [4, 3, 112, 112]"): a HEF's vstreams carry one frame.
    from hailo_ort.partition.types import TensorSpec

    info = _vstream("net/in", (112, 112, 3), "NHWC", QuantInfo(zp=3), [])
    spec = dfc._stream(info, TensorSpec("x", [4, 3, 112, 112], "float32"))
    assert spec.device_shape == [1, 112, 112, 3] and spec.shape == [4, 3, 112, 112]
    out = dfc._stream(
        _vstream("net/fc", (512,), "NC", QuantInfo(), []), TensorSpec("y", [4, 512], "float32")
    )
    assert out.device_shape == [1, 512]
    with pytest.raises(CompileError, match="is 1x1x256"):
        dfc._stream(
            _vstream("net/fc", (256,), "NC", QuantInfo(), []), TensorSpec("y", [4, 512], "float32")
        )
