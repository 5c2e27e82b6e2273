"""The whole flow as a user drives it: inspect → compile (emulate) → show → run.

On the built-in examples and a real third-party model (pplcnet), through the CLI and the
Python API, compared with plain onnxruntime on the original float model.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import third_party_model

import hailo_ort
from hailo_ort.cli import main
from hailo_ort.compile.calibration import CalibrationWarning, load_calibration
from hailo_ort.errors import CompileError, HailoOrtError, InputShapeError
from hailo_ort.fileio import write_bytes_atomic
from hailo_ort.zoo import get_example

EXAMPLES = ("yolov8n", "resnet18", "mobilenet_v2")
EMULATOR = [("HailoExecutionProvider", {"device": "emulator"}), "CPUExecutionProvider"]
PPLCNET_SHAPE = [1, 3, 224, 224]

pytestmark = pytest.mark.filterwarnings("ignore::hailo_ort.compile.calibration.CalibrationWarning")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(autouse=True)
def _cache(monkeypatch, workdir):
    monkeypatch.setenv("HAILO_ORT_CACHE_DIR", str(workdir / "cache"))
    monkeypatch.delenv("HAILO_DFC_PYTHON", raising=False)


def _compile_cli(argv: list[str], cwd: Path) -> int:
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return main(argv)
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def compiled(workdir) -> dict[str, Path]:
    """Each example compiled by `hailo-ort compile example:NAME` in a fresh folder (no -o)."""
    os.environ.setdefault("HAILO_ORT_CACHE_DIR", str(workdir / "cache"))
    out: dict[str, Path] = {}
    for name in EXAMPLES:
        folder = workdir / name
        folder.mkdir()
        argv = ["compile", f"example:{name}", "--arch", "hailo8l", "--calib", "random"]
        rc = _compile_cli([*argv, "--backend", "emulate", "--no-progress"], folder)
        assert rc == 0
        out[name] = folder / f"{name}.hailo.onnx"
    return out


def _inputs(model: onnx.ModelProto, seed: int) -> dict[str, np.ndarray]:
    """Images in 0..1 (what the examples' normalisation, mean 0.485 / std 0.229, expects)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in model.graph.input:
        shape = [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim]
        feeds[vi.name] = rng.random(shape, dtype=np.float32)
    return feeds


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _float_outputs(model: onnx.ModelProto | str, feeds: dict[str, np.ndarray]) -> list:
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize("name", EXAMPLES)
def test_cli_compile_of_an_example_writes_name_hailo_onnx_in_the_working_folder(
    name, compiled
) -> None:
    path = compiled[name]
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir() if p.suffix == ".onnx"] == [path.name]
    model = onnx.load(str(path))
    assert any(n.op_type == "HailoOp" and n.domain == "ai.hailo" for n in model.graph.node)


def test_compiled_file_has_ordinary_permissions(compiled) -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    mode = stat.S_IMODE(compiled["resnet18"].stat().st_mode)
    assert mode == 0o666 & ~mask


def test_atomic_write_keeps_the_mode_of_an_existing_file(tmp_path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


@pytest.mark.parametrize("name", EXAMPLES)
def test_show_and_parse_hef_describe_the_result(name, compiled, capsys) -> None:
    path = str(compiled[name])
    assert main(["hailoop", "show", path]) == 0
    shown = capsys.readouterr().out
    assert "backend emulate" in shown and "arch hailo8l" in shown and "CPU fallback yes" in shown
    outputs = 6 if name == "yolov8n" else 1  # the six head convs / the classifier logits
    assert shown.count("\n    out ") == outputs
    assert main(["parse-hef", path]) == 0
    assert "no HEF (emulated)" in capsys.readouterr().out


@pytest.mark.parametrize("name", EXAMPLES)
def test_emulator_session_is_close_to_float_but_not_identical(name, compiled) -> None:
    float_model = get_example(name)
    feeds = _inputs(float_model, seed=7)
    expected = _float_outputs(float_model, feeds)
    sess = hailo_ort.InferenceSession(str(compiled[name]), providers=EMULATOR)
    assert sess.get_providers() == ["HailoExecutionProvider", "CPUExecutionProvider"]
    got = sess.run(None, feeds)
    assert [o.name for o in sess.get_outputs()] == [o.name for o in float_model.graph.output]
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.dtype == e.dtype
        assert _cosine(g, e) > 0.98
        assert np.abs(g - e).max() > 0  # 8-bit emulation, not the float model


@pytest.mark.parametrize("name", EXAMPLES)
def test_portable_model_runs_on_plain_onnxruntime_as_float(name, compiled) -> None:
    float_model = get_example(name)
    feeds = _inputs(float_model, seed=3)
    expected = _float_outputs(float_model, feeds)
    got = _float_outputs(str(compiled[name]), feeds)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
    cpu = hailo_ort.InferenceSession(str(compiled[name]), providers=["CPUExecutionProvider"])
    assert cpu.get_providers() == ["CPUExecutionProvider"]
    for g, e in zip(cpu.run(None, feeds), expected):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


def test_session_runs_an_emulated_model_on_the_emulator(compiled) -> None:
    path = str(compiled["mobilenet_v2"])
    feeds = _inputs(get_example("mobilenet_v2"), seed=5)
    via_session = hailo_ort.session(path)
    assert via_session.get_providers() == ["HailoExecutionProvider", "CPUExecutionProvider"]
    assert via_session.get_provider_options()["HailoExecutionProvider"]["device"] == "emulator"
    explicit = hailo_ort.InferenceSession(path, providers=EMULATOR)
    for a, b in zip(via_session.run(None, feeds), explicit.run(None, feeds)):
        np.testing.assert_array_equal(a, b)


def test_auto_device_without_hardware_runs_an_emulated_model_on_the_cpu(compiled, caplog) -> None:
    path = str(compiled["resnet18"])
    sess = hailo_ort.InferenceSession(
        path, providers=["HailoExecutionProvider", "CPUExecutionProvider"]
    )
    assert sess.get_providers() == ["CPUExecutionProvider"]
    feeds = _inputs(get_example("resnet18"), seed=1)
    expected = _float_outputs(get_example("resnet18"), feeds)
    np.testing.assert_allclose(sess.run(None, feeds)[0], expected[0], rtol=1e-4, atol=1e-6)


def test_session_compiles_an_example_in_memory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    sess = hailo_ort.session("example:resnet18", compile="emulate", calibration="random")
    assert sess.get_providers() == ["HailoExecutionProvider", "CPUExecutionProvider"]
    assert list(tmp_path.glob("*.onnx")) == []
    feeds = _inputs(get_example("resnet18"), seed=2)
    expected = _float_outputs(get_example("resnet18"), feeds)
    assert _cosine(sess.run(None, feeds)[0], expected[0]) > 0.98
    plain = hailo_ort.InferenceSession("example:resnet18")
    np.testing.assert_array_equal(plain.run(None, feeds)[0], expected[0])


def test_compile_accepts_bytes_and_a_modelproto_and_writes_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    model = get_example("mobilenet_v2")
    for given in (model.SerializeToString(), model):
        result = hailo_ort.compile(given, "hailo8l", calibration="random", backend="emulate")
        assert result.path is None
        assert any(n.op_type == "HailoOp" for n in result.model.graph.node)
        assert result.summary.startswith("compiled model -> (not written)")
    assert list(tmp_path.iterdir()) == []


def test_compile_missing_model_is_a_one_line_error(tmp_path, capsys) -> None:
    with pytest.raises(CompileError, match="does not exist"):
        hailo_ort.compile(tmp_path / "nope.onnx", "hailo8l", calibration="random")
    with pytest.raises(HailoOrtError, match="unknown example 'nope'"):
        hailo_ort.compile("example:nope", "hailo8l", calibration="random", output=tmp_path / "x")
    rc = main(["compile", "example:nope", "--arch", "hailo8l", "--calib", "random"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "unknown example 'nope'" in err


def test_random_calibration_of_a_unit_range_image_input_is_in_0_1() -> None:
    inputs = {"x": ([1, 3, 4, 4], "float32")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        feeds = load_calibration("random", inputs, unit_inputs={"x"})
        pixel = load_calibration("random", inputs, pixel_inputs={"x"})
    x = np.stack([f["x"] for f in feeds])
    assert x.min() >= 0.0 and x.max() < 1.0 and x.max() > 0.9
    assert np.stack([f["x"] for f in pixel]).max() > 200


def test_examples_normalised_as_0_1_calibrate_as_0_1(tmp_path) -> None:
    """resnet18 normalises with mean 0.485 / std 0.229: 0..1 images, so random calibration
    must be 0..1 (with 0..255 its probabilities were unrelated to float's, cosine ~0.07)."""
    result = hailo_ort.compile(
        get_example("resnet18"), "hailo8l", calibration="random", backend="emulate"
    )
    sess = hailo_ort.InferenceSession(result.model, providers=EMULATOR)
    feeds = _inputs(get_example("resnet18"), seed=11)
    expected = _float_outputs(get_example("resnet18"), feeds)[0]
    got = sess.run(None, feeds)[0]
    assert _cosine(got, expected) > 0.98
    assert int(np.argmax(got)) == int(np.argmax(expected))


# ---- a real third-party model ----------------------------------------------------------------


@pytest.fixture(scope="module")
def pplcnet(workdir) -> tuple[Path, Path]:
    source = third_party_model("pplcnet")
    folder = workdir / "pplcnet"
    folder.mkdir()
    model = folder / "pplcnet.onnx"
    model.write_bytes(source.read_bytes())
    shape = ",".join(map(str, PPLCNET_SHAPE))
    argv = ["compile", str(model), "--arch", "hailo8l", "--calib", "random", "--backend"]
    rc = main([*argv, "emulate", "--input-shape", f"x={shape}", "--no-progress"])
    assert rc == 0
    return model, folder / "pplcnet.hailo.onnx"


def test_pplcnet_inspect_needs_and_takes_an_input_shape(pplcnet, capsys) -> None:
    model, _ = pplcnet
    assert main(["inspect", str(model), "--arch", "hailo8l"]) == 1
    assert "--input-shape x=1,3,224,224" in capsys.readouterr().err
    shape = ",".join(map(str, PPLCNET_SHAPE))
    assert main(["inspect", str(model), "--arch", "hailo8l", "--input-shape", f"x={shape}"]) == 0
    assert "1 partition" in capsys.readouterr().out


def test_pplcnet_compiled_runs_close_to_float(pplcnet, capsys) -> None:
    model, compiled_path = pplcnet
    assert main(["hailoop", "show", str(compiled_path)]) == 0
    assert "backend emulate" in capsys.readouterr().out
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal(PPLCNET_SHAPE).astype(np.float32)}
    expected = _float_outputs(str(model), feeds)
    sess = hailo_ort.InferenceSession(str(compiled_path), providers=EMULATOR)
    assert sess.get_providers() == ["HailoExecutionProvider", "CPUExecutionProvider"]
    got = sess.run(None, feeds)
    assert got[0].shape == expected[0].shape == (1, 4)
    assert _cosine(got[0], expected[0]) > 0.95
    portable = _float_outputs(str(compiled_path), feeds)
    np.testing.assert_allclose(portable[0], expected[0], rtol=1e-4, atol=1e-6)


def test_session_compiles_pplcnet_with_input_shapes(pplcnet, tmp_path) -> None:
    model, _ = pplcnet
    copy = tmp_path / "pplcnet.onnx"
    copy.write_bytes(model.read_bytes())
    with pytest.raises(InputShapeError, match=r"input_shapes=\{'x': \[1, 3, 224, 224\]\}"):
        hailo_ort.session(copy, compile="emulate", calibration="random")
    sess = hailo_ort.session(
        copy, compile="emulate", calibration="random", input_shapes={"x": PPLCNET_SHAPE}
    )
    assert sess.get_providers() == ["HailoExecutionProvider", "CPUExecutionProvider"]
    assert not (tmp_path / "pplcnet.hailo.onnx").exists()  # compiled in memory, not beside it


def _image_folder(folder: Path, count: int = 6) -> Path:
    from PIL import Image

    from hailo_ort.zoo import synthetic_images

    folder.mkdir()
    for i, image in enumerate(synthetic_images(count, (3, 40, 50), seed=2)):
        pixels = (image.transpose(1, 2, 0) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return folder


def test_cli_image_scale_sets_the_calibration_pixel_range(tmp_path, capsys) -> None:
    pytest.importorskip("PIL")
    images = _image_folder(tmp_path / "imgs")
    base = ["compile", "example:yolov8n", "--arch", "hailo8l", "--calib", str(images)]
    base += ["--backend", "emulate", "--no-progress", "-o"]
    proc = subprocess.run(
        [sys.executable, "-m", "hailo_ort", *base, str(tmp_path / "unit.hailo.onnx")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    warning = next(line for line in proc.stderr.splitlines() if "as 0..1" in line)
    assert warning.startswith("hailo-ort compile: warning:")
    assert "pass --image-scale 1" in warning  # the advice names an option that exists
    assert main([*base, str(tmp_path / "pixels.hailo.onnx"), "--image-scale", "1"]) == 0
    scales = {}
    for name in ("unit", "pixels"):
        (op,) = hailo_ort.hailoop.read(onnx.load(str(tmp_path / f"{name}.hailo.onnx")))
        scales[name] = op.compiled.inputs[0].quant.scale
    # uint8 over the calibrated input range: 0..1 → about 1/255, 0..255 → about 1
    assert 0.5 / 255 < scales["unit"] <= 1.01 / 255
    assert 0.5 < scales["pixels"] <= 1.01
    assert main([*base, str(tmp_path / "bad.hailo.onnx"), "--image-scale", "0"]) == 1
    assert "image scale must be positive" in capsys.readouterr().err


# ---- the DFC path: compile with the (fake) DFC, run on the (fake) HailoRT device -------------


def test_dfc_compiled_model_runs_on_hailort_in_both_flavours(tmp_path, monkeypatch) -> None:
    """compile(backend=dfc) → embed (portable and fork) → InferenceSession on HailoRT.

    The DFC and hailo_platform are the test doubles in tests/fake_*; the HEF is the real
    arcface fixture, so the partition is forced to the one that HEF was built from."""
    from compile_models import arcface_feeds, arcface_like, arcface_normalization, arcface_partition
    from test_compile_dfc import hef_fixture
    from test_hailort_device import _load_fake

    import hailo_ort.compile as compile_module

    hef_path = hef_fixture()
    (tmp_path / "fake.json").write_text(f'{{"hef": "{hef_path}"}}')
    fakes = Path(__file__).parent
    monkeypatch.setenv("PYTHONPATH", str(fakes / "fake_hailo_sdk_client"))
    monkeypatch.setenv("FAKE_DFC_CONFIG", str(tmp_path / "fake.json"))
    monkeypatch.setenv("HAILO_DFC_PYTHON", sys.executable)
    real_inspect = compile_module._inspect

    def with_the_fixtures_partition(*args):
        result = real_inspect(*args)
        result.partitions = [arcface_partition()]
        result.normalization = [arcface_normalization()]
        return result

    monkeypatch.setattr(compile_module, "_inspect", with_the_fixtures_partition)
    paths = {}
    for flavour in ("portable", "fork"):
        paths[flavour] = tmp_path / f"arc_{flavour}.onnx"
        result = hailo_ort.compile(
            arcface_like(), "hailo8", calibration=arcface_feeds(6), flavour=flavour,
            output=paths[flavour], progress=False,
        )  # fmt: skip
        assert result.backend == "dfc"
    fake_hp = _load_fake(monkeypatch)
    feed = arcface_feeds(1, seed=9)[0]
    outputs = {}
    for flavour, path in paths.items():
        (op,) = hailo_ort.hailoop.read(onnx.load(str(path)))
        assert op.flavour == flavour and op.compiled.hef == hef_path.read_bytes()
        sess = hailo_ort.InferenceSession(str(path))
        assert sess.get_providers() == ["HailoExecutionProvider", "CPUExecutionProvider"]
        assert [(o.name, o.shape) for o in sess.get_outputs()] == [("embedding", [1, 512])]
        outputs[flavour] = sess.run(None, feed)[0]
        sess.close()
        via_session = hailo_ort.session(str(path))  # a HEF model: HailoRT, not the emulator
        assert via_session.get_provider_options()["HailoExecutionProvider"]["device"] == "auto"
        np.testing.assert_array_equal(via_session.run(None, feed)[0], outputs[flavour])
        via_session.close()
    assert fake_hp.STATE.configure_calls == 4
    np.testing.assert_array_equal(outputs["portable"], outputs["fork"])
    assert np.isfinite(outputs["portable"]).all() and outputs["portable"].std() > 0
    assert hailort_open() == {}


def hailort_open() -> dict:
    from hailo_ort.runtime.devices import hailort

    return hailort.open_vdevices()


def test_sessions_take_what_compile_returns(tmp_path) -> None:
    model = get_example("mobilenet_v2")
    written = hailo_ort.compile(
        model, "hailo8l", calibration="random", backend="emulate", output=tmp_path / "m.onnx"
    )
    in_memory = hailo_ort.compile(model, "hailo8l", calibration="random", backend="emulate")
    assert in_memory.path is None
    feeds = _inputs(model, seed=8)
    outs = []
    for result in (written, in_memory):
        sess = hailo_ort.InferenceSession(result, providers=EMULATOR)
        assert sess.get_providers() == ["HailoExecutionProvider", "CPUExecutionProvider"]
        outs.append(sess.run(None, feeds)[0])
        assert hailo_ort.session(result).get_providers()[0] == "HailoExecutionProvider"
    np.testing.assert_array_equal(outs[0], outs[1])
    with pytest.raises(HailoOrtError, match="or a CompileResult, got int"):
        hailo_ort.InferenceSession(3)


def test_stripped_emulated_model_says_it_needs_the_emulator(compiled, tmp_path) -> None:
    stripped = tmp_path / "stripped.onnx"
    assert main(["hailoop", "strip", str(compiled["resnet18"]), str(stripped)]) == 0
    with pytest.raises(HailoOrtError, match=r"needs the emulator .*open it with device='emulator'"):
        hailo_ort.InferenceSession(str(stripped), providers=["CPUExecutionProvider"])
    sess = hailo_ort.session(str(stripped))  # session() picks the emulator for it
    feeds = _inputs(get_example("resnet18"), seed=4)
    full = hailo_ort.InferenceSession(str(compiled["resnet18"]), providers=EMULATOR)
    np.testing.assert_array_equal(sess.run(None, feeds)[0], full.run(None, feeds)[0])


def test_inspect_or_compile_of_a_compiled_model_says_it_is_compiled(compiled, capsys) -> None:
    path = str(compiled["mobilenet_v2"])
    for argv in (["inspect", path], ["compile", path, "--calib", "random", "-o", path + ".x"]):
        assert main([*argv, "--arch", "hailo8l"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "already compiled" in err and "hailoop fallback" in err
    assert not Path(path + ".x").exists()
    with pytest.raises(HailoOrtError, match="already compiled"):
        hailo_ort.inspect(path, "hailo8l")
