"""Input shapes: parsing, overrides, dynamic-shape errors, shape inference results."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hailo_ort.errors import InputShapeError, ModelError
from hailo_ort.graph import parse_input_shape, parse_input_shapes, prepare


def _conv_model(input_dims, second_input_dims=None) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_dims)]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if second_input_dims is not None:
        inputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, second_input_dims))
        nodes.append(helper.make_node("Relu", ["z"], ["z_out"], name="relu"))
        outputs.append(helper.make_tensor_value_info("z_out", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "g", inputs, outputs, [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_parse_input_shape():
    assert parse_input_shape("images=1,3,640,640") == ("images", [1, 3, 640, 640])
    assert parse_input_shape(" x = 1x3x224x224 ") == ("x", [1, 3, 224, 224])
    assert parse_input_shape("a=b=2,3") == ("a=b", [2, 3])
    assert parse_input_shape("scalar=7") == ("scalar", [7])


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("images", "expected NAME=D1,D2"),
        ("=1,2", "expected NAME=D1,D2"),
        ("x=", "no dimensions"),
        ("x=1,,3", "an empty dimension"),
        ("x=1,3,x", "dimension 'x' is not a positive integer"),  # 'x' alone is no separator
        ("x=1x3x", "dimension '1x3x' is not a positive integer"),
        ("x=1,-3", "dimension '-3' is not a positive integer"),
        ("x=1,0", "dimension '0' is not a positive integer"),
        ("x=1,3.5", "dimension '3.5'"),
        ("x=batch,3", "dimension 'batch'"),
    ],
)
def test_parse_input_shape_errors(spec, problem):
    with pytest.raises(InputShapeError, match=problem):
        parse_input_shape(spec)


def test_parse_input_shapes_list():
    assert parse_input_shapes(["a=1,2", "b=3"]) == {"a": [1, 2], "b": [3]}
    assert parse_input_shapes("a=1,2;b=3 c=4") == {"a": [1, 2], "b": [3], "c": [4]}
    assert parse_input_shapes(None) == {}
    with pytest.raises(InputShapeError, match="'a' is given more than one shape"):
        parse_input_shapes(["a=1", "a=2"])


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"x": [1, 3, 8, 8]}, [1, 3, 8, 8]),
        ({"x": (1, 3, 8, 8)}, [1, 3, 8, 8]),
        ({"x": np.array([1, 3, 8, 8])}, [1, 3, 8, 8]),
        ({"x": "1,3,8,8"}, [1, 3, 8, 8]),
        ("x=1x3x8x8", [1, 3, 8, 8]),
        (["x=1,3,8,8"], [1, 3, 8, 8]),
    ],
)
def test_api_input_shapes_forms(given, expected):
    assert prepare(_conv_model(["n", 3, 8, 8]), given).input_shapes == {"x": expected}


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"x": "a"}, "dimension 'a' is not a positive integer"),
        ({"x": ["a", 3, 8, 8]}, "must be a list of positive integers"),
        ({"x": [1.5, 3, 8, 8]}, "must be a list of positive integers"),
        ({"x": [True, 3, 8, 8]}, "must be a list of positive integers"),
        ({"x": None}, "must be a list of positive integers"),
        ({1: [1, 3, 8, 8]}, "keyed by input name"),
        ([1, 3, 8, 8], "input_shapes must be"),
        (5, "input_shapes must be"),
    ],
)
def test_api_input_shapes_misuse_is_an_input_shape_error(given, problem):
    with pytest.raises(InputShapeError, match=problem):
        prepare(_conv_model(["n", 3, 8, 8]), given)


def test_dynamic_input_error_names_input_shape_and_flag():
    with pytest.raises(InputShapeError) as info:
        prepare(_conv_model(["batch", 3, 8, 8]))
    message = str(info.value)
    assert message == (
        "input 'x' has dynamic shape ['batch', 3, 8, 8]; fix it with --input-shape x=1,3,8,8 "
        "(input_shapes={'x': [1, 3, 8, 8]} in Python)"
    )


def test_every_dynamic_input_is_named():
    with pytest.raises(InputShapeError) as info:
        prepare(_conv_model(["n", 3, "h", "w"], second_input_dims=[None, 5]))
    message = str(info.value)
    assert "input 'x' has dynamic shape ['n', 3, 'h', 'w']" in message
    assert "input 'z' has dynamic shape [?, 5]" in message
    assert "--input-shape z=1,5" in message
    assert "\n" not in message


def test_unknown_input_name_lists_real_inputs():
    with pytest.raises(InputShapeError, match=r"unknown input 'y'.*inputs are 'x'"):
        prepare(_conv_model([1, 3, 8, 8]), {"y": [1, 3, 8, 8]})


def test_rank_mismatch_and_bad_values():
    with pytest.raises(InputShapeError, match=r"rank 4.*rank 3"):
        prepare(_conv_model(["n", 3, 8, 8]), {"x": [1, 3, 8]})
    with pytest.raises(InputShapeError, match="non-positive"):
        prepare(_conv_model(["n", 3, 8, 8]), {"x": [0, 3, 8, 8]})


def test_override_fixes_and_changes_shapes():
    prepared = prepare(_conv_model(["n", 3, "h", "w"]), {"x": [2, 3, 10, 12]})
    assert prepared.input_shapes == {"x": [2, 3, 10, 12]}
    assert prepared.shapes["x"] == [2, 3, 10, 12]
    assert prepared.shapes["y"] == [2, 4, 10, 12]
    assert prepared.dtypes["y"] == "float32"
    dims = [d.dim_value for d in prepared.model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 3, 10, 12]
    # A static input can be overridden too (e.g. a smaller resolution); inference follows.
    smaller = prepare(_conv_model([1, 3, 8, 8]), {"x": [1, 3, 4, 4]})
    assert smaller.shapes["y"] == [1, 4, 4, 4]
    onnx.checker.check_model(smaller.model, full_check=True)


def test_stale_value_info_is_replaced():
    model = _conv_model([1, 3, 8, 8])
    model.graph.value_info.append(
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
    )
    prepared = prepare(model, {"x": [1, 3, 16, 16]})
    assert prepared.shapes["y"] == [1, 4, 16, 16]


def test_initializers_listed_as_inputs_are_not_inputs():
    model = _conv_model([1, 3, 8, 8])
    model.ir_version = 3
    model.graph.input.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 3, 3, 3]))
    prepared = prepare(model)
    assert prepared.input_shapes == {"x": [1, 3, 8, 8]}
    assert [vi.name for vi in prepared.model.graph.input] == ["x"]
    with pytest.raises(InputShapeError, match="unknown input 'w'"):
        prepare(model, {"w": [4, 3, 3, 3]})


def test_unknown_rank_input():
    model = _conv_model(None)
    with pytest.raises(InputShapeError, match="input 'x' has unknown rank"):
        prepare(model)
    assert prepare(model, {"x": [1, 3, 5, 5]}).shapes["y"] == [1, 4, 5, 5]


def test_input_shape_error_is_a_model_error():
    assert issubclass(InputShapeError, ModelError)
