"""Input shapes (fix, parse from the CLI) and shape inference."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Union

import numpy as np
import onnx
from onnx import helper

from ..errors import InputShapeError, ModelError

Dim = Union[int, str, None]

# Initializers bigger than this are handed to shape inference as typed inputs without data:
# inference only needs their shapes, and copying/serializing big weights is the slow part.
_INFERENCE_DATA_LIMIT = 4096


# ---------------------------------------------------------------------------------- parsing
_EXAMPLE = "e.g. images=1,3,640,640"


def _parse_dims(text: str, spec: str) -> list[int]:
    """Dims from ``D1,D2,...`` (or ``D1xD2x...``); names the offending dimension if any."""
    if not text.strip():
        raise InputShapeError(f"bad input shape {spec!r}: no dimensions after '=' ({_EXAMPLE})")
    dims: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise InputShapeError(
                f"bad input shape {spec!r}: an empty dimension (a doubled or trailing comma?)"
            )
        # "1x3x224x224" is a shorthand for "1,3,224,224"; a lone "x" is not a separator
        pieces = re.split(r"[xX]", part) if re.fullmatch(r"\d+(?:[xX]\d+)+", part) else [part]
        for piece in pieces:
            if not piece.isdigit() or int(piece) <= 0:
                raise InputShapeError(
                    f"bad input shape {spec!r}: dimension {piece!r} is not a positive integer"
                )
            dims.append(int(piece))
    return dims


def parse_input_shape(spec: str) -> tuple[str, list[int]]:
    """Parse one ``NAME=D1,D2,...`` (or ``NAME=D1xD2x...``) into ``(name, [dims])``."""
    text = spec.strip()
    name, sep, dims_text = text.rpartition("=")
    if not sep or not name.strip():
        raise InputShapeError(f"bad input shape {spec!r}: expected NAME=D1,D2,... ({_EXAMPLE})")
    return name.strip(), _parse_dims(dims_text, spec)


def parse_input_shapes(specs: Iterable[str] | str | None) -> dict[str, list[int]]:
    """Parse ``NAME=D1,D2,...`` strings (several per string allowed, separated by ``;`` or
    spaces) into ``{name: [dims]}``. A name given twice is an error."""
    if specs is None:
        return {}
    if isinstance(specs, str):
        specs = [specs]
    shapes: dict[str, list[int]] = {}
    for item in specs:
        if not isinstance(item, str):
            raise InputShapeError(
                f"bad input shape {item!r}: expected a 'NAME=D1,D2,...' string ({_EXAMPLE})"
            )
        for spec in re.split(r"[;\s]+", item.strip()):
            if not spec:
                continue
            name, dims = parse_input_shape(spec)
            if name in shapes:
                raise InputShapeError(f"input {name!r} is given more than one shape")
            shapes[name] = dims
    return shapes


def _dims_of_value(name: str, value: object) -> list[int]:
    """Dims of one ``input_shapes`` entry: a sequence of positive ints or a ``"1,3,H,W"`` text."""
    if isinstance(value, str):
        return _parse_dims(value, f"{name}={value}")
    bad = InputShapeError(
        f"input shape for {name!r} must be a list of positive integers "
        f"(e.g. [1, 3, 224, 224]), got {value!r}"
    )
    if not isinstance(value, Sequence | np.ndarray) or isinstance(value, bytes):
        raise bad
    dims: list[int] = []
    for d in value:
        if isinstance(d, bool) or not isinstance(d, int | np.integer):
            raise bad
        dims.append(int(d))
    if any(d <= 0 for d in dims):
        raise InputShapeError(f"input shape for {name!r} has a non-positive dimension: {dims}")
    return dims


def normalize_input_shapes(input_shapes: object) -> dict[str, list[int]]:
    """Check and convert the ``input_shapes`` a user passes to the Python API.

    Accepts ``None``, ``{name: [dims]}`` (dims may also be a ``"1,3,H,W"`` string), or
    ``"name=1,3,H,W"`` strings (one, or a list). Anything else raises
    :class:`~hailo_ort.errors.InputShapeError` saying what was expected.
    """
    if input_shapes is None:
        return {}
    if isinstance(input_shapes, str):
        return parse_input_shapes(input_shapes)
    if isinstance(input_shapes, Mapping):
        shapes: dict[str, list[int]] = {}
        for name, value in input_shapes.items():
            if not isinstance(name, str):
                raise InputShapeError(f"input shapes are keyed by input name; got key {name!r}")
            shapes[name] = _dims_of_value(name, value)
        return shapes
    if isinstance(input_shapes, Sequence) and all(isinstance(s, str) for s in input_shapes):
        return parse_input_shapes(list(input_shapes))
    raise InputShapeError(
        "input_shapes must be {name: [dims]} or 'name=D1,D2,...' strings, got "
        f"{type(input_shapes).__name__} {input_shapes!r}"[:300]
    )


# ------------------------------------------------------------------------------ inspection
def dims_of(type_proto: onnx.TypeProto) -> list[Dim] | None:
    """Dims of a tensor type: int for static, str for a named dim, None for an unknown one;
    None if the rank is unknown or the type is not a tensor."""
    if not type_proto.HasField("tensor_type"):
        return None
    tt = type_proto.tensor_type
    if not tt.HasField("shape"):
        return None
    dims: list[Dim] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


def static_dims(type_proto: onnx.TypeProto) -> list[int] | None:
    """Dims if all are known non-negative ints, else None."""
    if not type_proto.HasField("tensor_type"):
        return None
    tt = type_proto.tensor_type
    if not tt.HasField("shape"):
        return None
    values = [d.dim_value for d in tt.shape.dim]
    if not values or min(values) > 0:  # fast path: every dim is a positive value
        return values
    dims = dims_of(type_proto)
    if dims is None or not all(isinstance(d, int) and d >= 0 for d in dims):
        return None
    return dims  # type: ignore[return-value]


_DTYPE_NAMES: dict[int, str | None] = {}


def np_dtype_name(elem_type: int) -> str | None:
    """Numpy dtype name of an ONNX element type (None for UNDEFINED / unknown)."""
    name = _DTYPE_NAMES.get(elem_type, "")
    if name != "":
        return name
    if elem_type == onnx.TensorProto.UNDEFINED:
        name = None
    else:
        try:
            name = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name
        except (KeyError, TypeError, ValueError):
            name = onnx.TensorProto.DataType.Name(elem_type).lower()
    _DTYPE_NAMES[elem_type] = name
    return name


def _show_dims(dims: Sequence[Dim]) -> str:
    return "[" + ", ".join("?" if d is None else repr(d) for d in dims) + "]"


def model_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are real inputs (not initializers listed as inputs, old IR style)."""
    inits = {i.name for i in graph.initializer}
    return [vi for vi in graph.input if vi.name not in inits]


def drop_initializer_inputs(graph: onnx.GraphProto) -> int:
    """Remove initializers from the graph inputs (they are constants, not model inputs)."""
    inits = {i.name for i in graph.initializer}
    if not any(vi.name in inits for vi in graph.input):
        return 0
    keep = [vi for vi in graph.input if vi.name not in inits]
    removed = len(graph.input) - len(keep)
    del graph.input[:]
    graph.input.extend(keep)
    return removed


# ------------------------------------------------------------------------------ fixing
def fix_input_shapes(
    model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | Sequence[str] | None = None
) -> dict[str, list[int]]:
    """Make every model input static, applying ``input_shapes`` overrides; returns the shapes.

    Raises :class:`InputShapeError` for an unknown input name, a rank mismatch, or inputs that
    stay dynamic (each named with its shape and the ``--input-shape`` flag that fixes it).
    """
    inputs = model_inputs(model.graph)
    by_name = {vi.name: vi for vi in inputs}
    overrides = normalize_input_shapes(input_shapes)
    unknown = [n for n in overrides if n not in by_name]
    if unknown:
        real = ", ".join(repr(vi.name) for vi in inputs) or "(none)"
        raise InputShapeError(
            f"unknown input {', '.join(repr(n) for n in unknown)} in input shapes; "
            f"the model's inputs are {real}"
        )
    problems: list[str] = []
    fixed: dict[str, list[int]] = {}
    for vi in inputs:
        if not vi.type.HasField("tensor_type"):
            raise InputShapeError(f"input {vi.name!r} is not a tensor; it is not supported")
        dims = dims_of(vi.type)
        if vi.name in overrides:
            new = overrides[vi.name]
            if dims is not None and len(dims) != len(new):
                raise InputShapeError(
                    f"input {vi.name!r} has rank {len(dims)} {_show_dims(dims)}, "
                    f"but the given shape {new} has rank {len(new)}"
                )
            shape = vi.type.tensor_type.shape
            del shape.dim[:]
            for d in new:
                shape.dim.add().dim_value = d
            fixed[vi.name] = new
            continue
        if dims is None:
            problems.append(
                f"input {vi.name!r} has unknown rank; fix it with --input-shape {vi.name}=D1,D2,..."
            )
        elif not all(isinstance(d, int) for d in dims):
            suggestion = ",".join(str(d) if isinstance(d, int) else "1" for d in dims)
            problems.append(
                f"input {vi.name!r} has dynamic shape {_show_dims(dims)}; "
                f"fix it with --input-shape {vi.name}={suggestion} "
                f"(input_shapes={{{vi.name!r}: [{suggestion.replace(',', ', ')}]}} in Python)"
            )
        else:
            fixed[vi.name] = list(dims)  # type: ignore[arg-type]
    if problems:
        raise InputShapeError("; ".join(problems))
    return fixed


# ------------------------------------------------------------------------------ inference
def infer_shapes(model: onnx.ModelProto) -> None:
    """Run ONNX shape inference (with data propagation) and store the result in ``model``.

    The top-level ``value_info`` is recomputed; entries inference cannot produce (e.g. outputs
    of custom ops) are kept from the model when they still name a node output. Big weights are
    given to inference as shapes only.
    """
    graph = model.graph
    light = onnx.ModelProto()
    light.ir_version = max(model.ir_version, 4)
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    lg = light.graph
    lg.name = graph.name
    lg.node.extend(graph.node)
    lg.input.extend(graph.input)
    lg.sparse_initializer.extend(graph.sparse_initializer)
    input_names = {vi.name for vi in graph.input}
    for init in graph.initializer:
        size = math.prod(init.dims)
        if size > _INFERENCE_DATA_LIMIT and init.name not in input_names:
            lg.input.append(helper.make_tensor_value_info(init.name, init.data_type, init.dims))
        else:
            lg.initializer.append(init)
    for out in graph.output:
        vi = lg.output.add()
        vi.name = out.name
        if out.type.HasField("tensor_type"):
            vi.type.tensor_type.elem_type = out.type.tensor_type.elem_type
        else:
            vi.type.CopyFrom(out.type)
    try:
        inferred = onnx.shape_inference.infer_shapes(
            light, check_type=False, strict_mode=False, data_prop=True
        )
    except Exception as exc:  # onnx raises several types (InferenceError, ValidationError...)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"shape inference failed: {first}") from None

    produced = {o for n in graph.node for o in n.output if o}
    new_vi = {vi.name: vi for vi in inferred.graph.value_info if vi.name in produced}
    for vi in graph.value_info:
        if vi.name in produced and vi.name not in new_vi:
            new_vi[vi.name] = vi
    kept = list(new_vi.values())
    del graph.value_info[:]
    graph.value_info.extend(kept)

    inferred_out = {o.name: o for o in inferred.graph.output}
    for out in graph.output:
        got = inferred_out.get(out.name)
        if got is None or not got.type.HasField("tensor_type"):
            continue
        old_dims, new_dims = dims_of(out.type), dims_of(got.type)
        if new_dims is None:
            continue
        known_new = sum(isinstance(d, int) for d in new_dims)
        known_old = -1 if old_dims is None else sum(isinstance(d, int) for d in old_dims)
        if known_new >= known_old:
            out.type.CopyFrom(got.type)
        elif got.type.tensor_type.elem_type and not out.type.tensor_type.elem_type:
            out.type.tensor_type.elem_type = got.type.tensor_type.elem_type


def collect_types(
    model: onnx.ModelProto,
) -> tuple[dict[str, list[int] | None], dict[str, str]]:
    """``shapes`` (static dims or None) and ``dtypes`` (numpy names) of every typed tensor."""
    graph = model.graph
    shapes: dict[str, list[int] | None] = {}
    dtypes: dict[str, str] = {}
    for init in graph.initializer:
        shapes[init.name] = [int(d) for d in init.dims]
        name = np_dtype_name(init.data_type)
        if name:
            dtypes[init.name] = name
    for vi in (*graph.value_info, *graph.input, *graph.output):
        if not vi.type.HasField("tensor_type"):
            continue
        dims = static_dims(vi.type)
        if dims is not None or shapes.get(vi.name) is None:
            shapes[vi.name] = dims
        name = np_dtype_name(vi.type.tensor_type.elem_type)
        if name:
            dtypes[vi.name] = name
    return shapes, dtypes
