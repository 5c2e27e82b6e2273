"""The PreparedModel contract as later stages use it: types, names, and cutting sub-models."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

import hailo_ort.graph as graph_api
from hailo_ort.graph import PreparedModel, extract_subgraph, prepare, value_infos


def _run(model, feeds, outputs=None):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(outputs, feeds)


def test_public_names():
    for name in (
        "load_model",
        "prepare",
        "parse_input_shape",
        "parse_input_shapes",
        "PreparedModel",
        "extract_subgraph",
        "value_infos",
    ):
        assert name in graph_api.__all__ and hasattr(graph_api, name)


def test_every_tensor_is_typed_with_static_shape():
    prepared = prepare("example:yolov8n")
    assert isinstance(prepared, PreparedModel)
    infos = value_infos(prepared.model)
    for node in prepared.model.graph.node:
        for tensor in (*node.input, *node.output):
            if tensor:
                assert tensor in infos, tensor
                assert prepared.shapes[tensor] is not None, tensor
                assert prepared.dtypes[tensor] == "float32" or tensor in {
                    t.name for t in prepared.model.graph.initializer
                }
    assert prepared.shapes["output0"] == [1, 84, 525]


def test_device_part_of_yolov8n_cuts_out_and_matches():
    prepared = prepare("example:yolov8n")
    model = prepared.model
    heads = [f"/model.22/{h}.{i}/{h}.{i}.2/Conv" for i in range(3) for h in ("cv2", "cv3")]
    by_name = {n.name: n for n in model.graph.node}
    head_outputs = [by_name[h].output[0] for h in heads]
    # Every node the head convs depend on.
    producer = {o: n for n in model.graph.node for o in n.output}
    wanted, stack = set(), list(head_outputs)
    while stack:
        node = producer.get(stack.pop())
        if node is not None and node.name not in wanted:
            wanted.add(node.name)
            stack.extend(node.input)
    assert "/model.22/dfl/conv/Conv" not in wanted
    sub = extract_subgraph(model, wanted, ["images"], head_outputs)
    onnx.checker.check_model(sub, full_check=True)
    x = np.random.default_rng(0).random((1, 3, 160, 160), dtype=np.float32)
    full = onnx.ModelProto()
    full.CopyFrom(model)
    for t in head_outputs:
        full.graph.output.append(helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
    expected = _run(full, {"images": x}, head_outputs)
    got = _run(sub, {"images": x})
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6)
