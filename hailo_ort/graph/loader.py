"""Load an ONNX model from a path, bytes, a ModelProto or a built-in example, and prepare it."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Union

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from ..errors import ModelError
from .flops import count_flops_and_params
from .fold import fold_constants, may_have_subgraph
from .prepared import PreparedModel
from .shapes import collect_types, drop_initializer_inputs, fix_input_shapes, infer_shapes

ModelLike = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, onnx.ModelProto]

EXAMPLE_PREFIX = "example:"


def _check_structure(model: onnx.ModelProto, source: str) -> None:
    """Reject protobufs that parsed but are not usable ONNX models (one-line ModelError)."""
    if model.ir_version <= 0 and not model.HasField("graph"):
        raise ModelError(f"{source}: not an ONNX model (no IR version and no graph)")
    if not model.HasField("graph"):
        raise ModelError(f"{source}: ONNX model has no graph")
    if len(model.graph.node) == 0:
        raise ModelError(f"{source}: ONNX model has an empty graph (no nodes)")
    if len(model.graph.output) == 0:
        raise ModelError(f"{source}: ONNX graph has no outputs")
    if model.ir_version <= 0:
        raise ModelError(f"{source}: ONNX model has no IR version (corrupt or not ONNX)")
    if model.ir_version >= 3 and len(model.opset_import) == 0:
        raise ModelError(f"{source}: ONNX model has no opset import (corrupt or truncated)")


def _parse(data: bytes, source: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{source}: not a valid ONNX model (cannot parse protobuf: {first})"
        ) from None
    return model


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """TensorProtos of a graph that can hold external data: initializers, Constant values and
    the same inside subgraphs."""
    yield from graph.initializer
    for node in graph.node:
        if node.op_type != "Constant" and not may_have_subgraph(node):
            continue
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _graph_tensors(attr.g)
            for sub in attr.graphs:
                yield from _graph_tensors(sub)


def _has_external_data(model: onnx.ModelProto) -> bool:
    return any(external_data_helper.uses_external_data(t) for t in _graph_tensors(model.graph))


def _load_external(model: onnx.ModelProto, base_dir: Path, source: str) -> None:
    for tensor in _graph_tensors(model.graph):
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = external_data_helper.ExternalDataInfo(tensor)
        location = info.location
        if not location:
            raise ModelError(f"{source}: tensor {tensor.name!r} has external data with no location")
        if Path(location).is_absolute() or ".." in Path(location).parts:
            raise ModelError(
                f"{source}: tensor {tensor.name!r} points outside the model folder ({location!r})"
            )
        data_path = base_dir / location
        if not data_path.is_file():
            raise ModelError(
                f"{source}: external data file {location!r} for tensor {tensor.name!r} "
                f"not found in {base_dir}"
            )
        with open(data_path, "rb") as f:
            if info.offset:
                f.seek(info.offset)
            raw = f.read(info.length) if info.length else f.read()
        if info.length and len(raw) != info.length:
            raise ModelError(
                f"{source}: external data file {location!r} is truncated "
                f"(tensor {tensor.name!r} wants {info.length} bytes, got {len(raw)})"
            )
        tensor.raw_data = raw
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]


def _check_initializers(model: onnx.ModelProto, source: str) -> None:
    """Raw initializer data must have the size its dims and type say (catches corrupt weights)."""
    for tensor in model.graph.initializer:
        if not tensor.raw_data or tensor.data_location == onnx.TensorProto.EXTERNAL:
            continue
        itemsize = _ITEMSIZE.get(tensor.data_type)
        if itemsize is None:
            continue
        expected = math.prod(tensor.dims) * itemsize
        if len(tensor.raw_data) != expected:
            kind = onnx.TensorProto.DataType.Name(tensor.data_type)
            raise ModelError(
                f"{source}: initializer {tensor.name!r} has {len(tensor.raw_data)} bytes of data, "
                f"expected {expected} for {kind} {list(tensor.dims)} (corrupt file?)"
            )


_T = onnx.TensorProto
_ITEMSIZE = {
    _T.FLOAT: 4, _T.DOUBLE: 8, _T.FLOAT16: 2, _T.BFLOAT16: 2, _T.INT8: 1, _T.UINT8: 1,
    _T.INT16: 2, _T.UINT16: 2, _T.INT32: 4, _T.UINT32: 4, _T.INT64: 8, _T.UINT64: 8,
    _T.BOOL: 1, _T.COMPLEX64: 8, _T.COMPLEX128: 16,
}  # fmt: skip


def load_model(model: ModelLike) -> onnx.ModelProto:
    """Load an ONNX model.

    ``model`` is a path (``str`` / ``Path``), the serialized bytes, an ``onnx.ModelProto``
    (returned as is), or ``"example:NAME"`` for a built-in example (:mod:`hailo_ort.zoo`).
    External data is loaded from the model's folder. A missing, corrupt or non-ONNX file, or
    an empty graph, raises :class:`~hailo_ort.errors.ModelError` naming the file and the problem.
    """
    if isinstance(model, onnx.ModelProto):
        source = f"model {model.graph.name!r}" if model.graph.name else "model"
        _check_structure(model, source)
        _check_initializers(model, source)
        if _has_external_data(model):
            raise ModelError(
                f"{source}: has unloaded external data; pass the model's path instead so it "
                "can be found"
            )
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        source = "model bytes"
        proto = _parse(bytes(model), source)
        _check_structure(proto, source)
        _check_initializers(proto, source)
        if _has_external_data(proto):
            raise ModelError(
                f"{source}: the model refers to external data files; pass its path instead"
            )
        return proto
    if isinstance(model, str) and model.startswith(EXAMPLE_PREFIX):
        from ..zoo import get_example

        return get_example(model[len(EXAMPLE_PREFIX) :])
    if not isinstance(model, (str, os.PathLike)):
        raise ModelError(
            f"cannot load a model from {type(model).__name__}; give a path, bytes, an "
            "onnx.ModelProto or 'example:NAME'"
        )
    path = Path(model)
    source = str(path)
    if not path.exists():
        raise ModelError(f"{source}: no such file")
    if path.is_dir():
        raise ModelError(f"{source}: is a folder, not an ONNX file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{source}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise ModelError(f"{source}: file is empty")
    proto = _parse(data, source)
    _check_structure(proto, source)
    if _has_external_data(proto):
        _load_external(proto, path.resolve().parent, source)
    _check_initializers(proto, source)
    return proto


def assign_node_names(graph: onnx.GraphProto, renamed: dict[str, str] | None = None) -> int:
    """Give every node of ``graph`` (not of its subgraphs) a unique non-empty name.

    Unnamed nodes become ``<op_type>_<index>``; a repeated name keeps its first owner and the
    later nodes get a ``_<k>`` suffix. Nodes with unique names are untouched. Returns how many
    names changed; ``renamed`` (if given) receives ``{new name: name in the file}`` for each
    (``""`` for a node that had no name).
    """
    counts: dict[str, int] = {}
    for node in graph.node:
        if node.name:
            counts[node.name] = counts.get(node.name, 0) + 1
    taken = set(counts)
    seen: set[str] = set()
    changed = 0
    for index, node in enumerate(graph.node):
        name = node.name
        if name and counts[name] == 1:
            continue
        if name and name not in seen:
            seen.add(name)
            continue
        base = name if name else f"{node.op_type or 'node'}_{index}"
        candidate, k = base, 1
        if name or candidate in taken:
            candidate = f"{base}_{k}"
            while candidate in taken:
                k += 1
                candidate = f"{base}_{k}"
        if renamed is not None:
            renamed[candidate] = name
        node.name = candidate
        taken.add(candidate)
        changed += 1
    return changed


def prepare(
    model: ModelLike,
    input_shapes: Mapping[str, Sequence[int]] | Sequence[str] | None = None,
    fold: bool = True,
) -> PreparedModel:
    """Load ``model`` and make it ready to partition (stage 1).

    Names every node uniquely, fixes the input shapes (``input_shapes`` overrides dims; dynamic
    dims left over raise :class:`~hailo_ort.errors.InputShapeError`), infers shapes, folds
    constants to a fixed point (``fold=True``), and counts FLOPs and parameters per node. The
    caller's ModelProto is not modified.
    """
    loaded = load_model(model)
    if isinstance(model, onnx.ModelProto):  # the caller's: work on a copy
        loaded = onnx.ModelProto()
        loaded.CopyFrom(model)
    try:
        return _prepare_loaded(loaded, input_shapes, fold)
    except UnicodeError:
        source = str(model) if isinstance(model, (str, os.PathLike)) else "model"
        raise ModelError(
            f"{source}: the model contains text that is not valid UTF-8 (corrupt file?)"
        ) from None


def _prepare_loaded(
    proto: onnx.ModelProto,
    input_shapes: Mapping[str, Sequence[int]] | Sequence[str] | None,
    fold: bool,
) -> PreparedModel:
    """Stage 1 on ``proto``, in place (``proto`` is a model no caller holds)."""
    graph = proto.graph
    drop_initializer_inputs(graph)
    renamed: dict[str, str] = {}
    assign_node_names(graph, renamed)
    fixed = fix_input_shapes(proto, input_shapes)
    infer_shapes(proto)
    folded: list[str] = []
    if fold:
        folded = fold_constants(proto)
    shapes, dtypes = collect_types(proto)
    node_flops, node_params = count_flops_and_params(proto, shapes)
    return PreparedModel(
        model=proto,
        input_shapes=fixed,
        node_flops=node_flops,
        node_params=node_params,
        folded=folded,
        shapes=shapes,
        dtypes=dtypes,
        renamed_nodes=renamed,
    )
