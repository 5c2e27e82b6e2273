"""Wrong arguments to the public Python API raise HailoOrtError subclasses naming the problem."""

from __future__ import annotations

import pytest
from compile_models import small_convnet

import hailo_ort
from hailo_ort.errors import HailoOrtError, InputShapeError, ModelError


@pytest.mark.parametrize(
    ("input_shapes", "problem"),
    [
        ({"x": "a"}, "dimension 'a'"),
        ({"x": ["a", 3, 16, 16]}, "list of positive integers"),
        ({"x": None}, "list of positive integers"),
        ([1, 3, 16, 16], "input_shapes must be"),
    ],
)
def test_inspect_bad_input_shapes(input_shapes, problem):
    with pytest.raises(InputShapeError, match=problem):
        hailo_ort.inspect(small_convnet(), "hailo8", input_shapes=input_shapes)


@pytest.mark.parametrize("model", [5, None, [1, 2]])
def test_compile_and_inspect_bad_model_argument(model):
    with pytest.raises(ModelError, match=type(model).__name__):
        hailo_ort.compile(model, "hailo8", calibration="random", backend="emulate")
    with pytest.raises(HailoOrtError):
        hailo_ort.inspect(model, "hailo8")


def test_compile_bad_input_shapes_before_any_work():
    with pytest.raises(InputShapeError, match="dimension 'a'"):
        hailo_ort.compile(
            small_convnet(),
            "hailo8",
            calibration="random",
            backend="emulate",
            input_shapes={"x": "a"},
            cache=False,
            progress=False,
        )
