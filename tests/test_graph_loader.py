"""Loading models: sources, errors, external data, node naming."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hailo_ort.errors import HailoOrtError, ModelError
from hailo_ort.graph import assign_node_names, load_model, prepare
from hailo_ort.zoo import resnet18


def _tiny_model(nodes: list[onnx.NodeProto] | None = None) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "w")
    nodes = nodes or [
        helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
        helper.make_node("Relu", ["y"], ["out"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 3])],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_sources_path_bytes_proto_example(tmp_path):
    model = _tiny_model()
    path = tmp_path / "tiny.onnx"
    path.write_bytes(model.SerializeToString())
    for source in (str(path), path, model.SerializeToString(), model):
        loaded = load_model(source)
        assert [n.name for n in loaded.graph.node] == ["mm", "relu"]
    example = load_model("example:resnet18")
    assert example.graph.input[0].name == "input"


def test_missing_file_names_the_file(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ModelError, match=r"nope\.onnx: no such file"):
        load_model(missing)


def test_folder_and_empty_file(tmp_path):
    with pytest.raises(ModelError, match="folder"):
        load_model(tmp_path)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match=r"empty\.onnx: file is empty"):
        load_model(empty)


@pytest.mark.parametrize(
    "data",
    [b"this is not an onnx model at all\n", b"\x00\x01\x02\xff\xfe" * 7, b'{"json": true}'],
)
def test_not_onnx_bytes(tmp_path, data):
    path = tmp_path / "junk.onnx"
    path.write_bytes(data)
    with pytest.raises(ModelError) as info:
        load_model(path)
    message = str(info.value)
    assert "junk.onnx" in message and "\n" not in message
    with pytest.raises(ModelError):
        load_model(data)


def test_truncated_file_is_a_model_error(tmp_path):
    data = resnet18().SerializeToString()
    for cut in (1, 7, 100, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 3):
        path = tmp_path / f"cut{cut}.onnx"
        path.write_bytes(data[:cut])
        with pytest.raises(ModelError, match=f"cut{cut}.onnx"):
            load_model(path)


def test_empty_graph():
    graph = helper.make_graph(
        [], "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ModelError, match="empty graph"):
        load_model(model.SerializeToString())


def test_unsupported_type_and_unknown_example():
    with pytest.raises(ModelError, match="cannot load a model from int"):
        load_model(42)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="valid examples: mobilenet_v2, resnet18"):
        load_model("example:yolov99")


def test_external_data_round_trip(tmp_path, monkeypatch):
    model = resnet18()
    original = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    folder = tmp_path / "model_dir"
    folder.mkdir()
    path = folder / "net.onnx"
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="net.weights",
        size_threshold=256,
    )
    assert (folder / "net.weights").stat().st_size > 100_000
    assert path.stat().st_size < 50_000
    monkeypatch.chdir(tmp_path)  # external data is found relative to the model, not the cwd
    loaded = load_model(path)
    assert len(loaded.graph.initializer) == len(original)
    for t in loaded.graph.initializer:
        assert t.data_location == TensorProto.DEFAULT
        np.testing.assert_array_equal(numpy_helper.to_array(t), original[t.name])
    prepared = prepare(path)
    onnx.checker.check_model(prepared.model)

    (folder / "net.weights").unlink()
    with pytest.raises(ModelError, match=r"external data file 'net\.weights'.*not found"):
        load_model(path)
    # Given as bytes, external data cannot be found.
    with pytest.raises(ModelError, match="external data"):
        load_model(path.read_bytes())


def test_errors_are_hailo_ort_errors():
    with pytest.raises(HailoOrtError):
        load_model(b"garbage")


def test_node_naming_unique_and_stable():
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["a"], name=""),
        helper.make_node("Relu", ["a"], ["b"], name="dup"),
        helper.make_node("Relu", ["b"], ["c"], name="dup"),
        helper.make_node("Relu", ["c"], ["d"], name="MatMul_0"),  # collides with auto name
        helper.make_node("Relu", ["d"], ["e"], name="keep"),
        helper.make_node("Relu", ["e"], ["out"]),
    ]
    model = _tiny_model(nodes)
    names = [n.name for n in prepare(model, fold=False).model.graph.node]
    assert len(set(names)) == len(names) and all(names)
    assert names[1] == "dup" and names[2] != "dup"
    assert names[3] == "MatMul_0" and names[0] != "MatMul_0"
    assert names[0].startswith("MatMul_0")
    assert names[4] == "keep"
    assert names[5] == "Relu_5"
    # Each new name maps back to the name in the file ("" for none); kept names are not listed.
    renamed = prepare(model, fold=False).renamed_nodes
    assert renamed == {names[0]: "", names[2]: "dup", "Relu_5": ""}
    # The caller's model is not modified.
    assert model.graph.node[0].name == ""


def test_assign_node_names_leaves_unique_names():
    model = resnet18()
    before = [n.name for n in model.graph.node]
    assert assign_node_names(model.graph) == 0
    assert [n.name for n in model.graph.node] == before


def test_corrupted_models_raise_only_model_errors():
    """Random byte flips in the node section: prepare either works or raises ModelError."""
    from hailo_ort.zoo import yolov8n

    data = yolov8n(size=64).SerializeToString()
    rng = np.random.default_rng(7)
    errors = 0
    for _ in range(120):
        mutated = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            mutated[int(rng.integers(0, 40_000))] = int(rng.integers(0, 256))
        try:
            prepare(bytes(mutated))
        except ModelError as exc:
            assert "\n" not in str(exc)
            errors += 1
    assert errors > 0


def test_initializer_with_wrong_data_size():
    model = _tiny_model()
    model.graph.initializer[0].raw_data = model.graph.initializer[0].raw_data[:10]
    with pytest.raises(ModelError, match=r"initializer 'w' has 10 bytes of data, expected 48"):
        load_model(model.SerializeToString())
    with pytest.raises(ModelError, match="initializer 'w'"):
        prepare(model)
