"""Small ONNX models and partitions for the compile tests (built here, no external files)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hailo_ort.partition.types import Partition, TensorSpec


def small_convnet(seed: int = 0) -> onnx.ModelProto:
    """x [1,3,16,16] 0..255 → Mul(1/255) → Conv → Relu → Conv → Relu → GAP → Flatten → Gemm → Softmax.

    Nodes are named and shapes inferred, as a prepared model's are.
    """
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((8, 3, 3, 3)) * 0.4).astype(np.float32)
    b1 = (rng.standard_normal(8) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((16, 8, 3, 3)) * 0.2).astype(np.float32)
    b2 = (rng.standard_normal(16) * 0.1).astype(np.float32)
    wf = (rng.standard_normal((10, 16)) * 0.5).astype(np.float32)
    bf = (rng.standard_normal(10) * 0.1).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.array(1 / 255, np.float32), "inv255"),
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(b1, "b1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(b2, "b2"),
        numpy_helper.from_array(wf, "wf"),
        numpy_helper.from_array(bf, "bf"),
    ]
    nodes = [
        helper.make_node("Mul", ["x", "inv255"], ["xn"], name="norm"),
        helper.make_node("Conv", ["xn", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["prob"], name="softmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "small-convnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def convnet_partition(kind: str = "classifier") -> Partition:
    """A partition of :func:`small_convnet`.

    "classifier": conv1..fc (4-D input xn, 2-D output logits);
    "features": conv1..relu2 (4-D in, 4-D out);
    "from_input": norm..fc (the model input x itself is the boundary).
    """
    if kind == "classifier":
        return Partition(
            index=0,
            nodes=["conv1", "relu1", "conv2", "relu2", "gap", "flatten", "fc"],
            start_nodes=["conv1"],
            end_nodes=["fc"],
            inputs=[TensorSpec("xn", [1, 3, 16, 16], "float32")],
            outputs=[TensorSpec("logits", [1, 10], "float32")],
        )
    if kind == "features":
        return Partition(
            index=1,
            nodes=["conv1", "relu1", "conv2", "relu2"],
            start_nodes=["conv1"],
            end_nodes=["relu2"],
            inputs=[TensorSpec("xn", [1, 3, 16, 16], "float32")],
            outputs=[TensorSpec("r2", [1, 16, 16, 16], "float32")],
        )
    if kind == "from_input":
        return Partition(
            index=0,
            nodes=["norm", "conv1", "relu1", "conv2", "relu2", "gap", "flatten", "fc"],
            start_nodes=["conv1"],
            end_nodes=["fc"],
            inputs=[TensorSpec("x", [1, 3, 16, 16], "float32")],
            outputs=[TensorSpec("logits", [1, 10], "float32")],
        )
    raise ValueError(kind)


def image_feeds(n: int, seed: int = 1) -> list[dict[str, np.ndarray]]:
    """``n`` feeds of smooth random 'images' with integer pixel values 0..255."""
    rng = np.random.default_rng(seed)
    feeds = []
    yy, xx = np.mgrid[0:16, 0:16].astype(np.float32)
    for _ in range(n):
        chans = []
        for _c in range(3):
            a, b, c = rng.uniform(-1, 1, 3)
            base = 128 + 100 * np.sin(a * xx / 3 + b * yy / 3 + c * 6)
            chans.append(base + rng.normal(0, 10, (16, 16)))
        img = np.clip(np.round(np.stack(chans)), 0, 255).astype(np.float32)
        feeds.append({"x": img[None]})
    return feeds


def arcface_like() -> onnx.ModelProto:
    """A tiny model with the boundary shapes of the real arcface_mobilefacenet HEF fixture.

    x [1,3,112,112] 0..255 → Sub_0 (127.5) → Mul_1 (1/128) → Conv_2 → Relu_3 →
    GlobalAveragePool_4 → Flatten_5 → MatMul_95 → BatchNormalization_96 → fc1 [1,512] →
    Mul_97 (CPU tail) → embedding. The fixture's output vstream lists MatMul_95 and
    BatchNormalization_96 as its original names.
    """
    rng = np.random.default_rng(5)
    inits = [
        numpy_helper.from_array(np.array(127.5, np.float32), "mean"),
        numpy_helper.from_array(np.array(1 / 128, np.float32), "inv_std"),
        numpy_helper.from_array((rng.standard_normal((8, 3, 8, 8)) * 0.1).astype(np.float32), "w"),
        numpy_helper.from_array((rng.standard_normal((8, 512)) * 0.3).astype(np.float32), "fcw"),
        numpy_helper.from_array(np.ones(512, np.float32), "bn_scale"),
        numpy_helper.from_array(np.zeros(512, np.float32), "bn_bias"),
        numpy_helper.from_array(np.zeros(512, np.float32), "bn_mean"),
        numpy_helper.from_array(np.ones(512, np.float32), "bn_var"),
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
    ]
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["xs"], name="Sub_0"),
        helper.make_node("Mul", ["xs", "inv_std"], ["xn"], name="Mul_1"),
        helper.make_node("Conv", ["xn", "w"], ["c"], name="Conv_2", strides=[8, 8]),
        helper.make_node("Relu", ["c"], ["r"], name="Relu_3"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="GlobalAveragePool_4"),
        helper.make_node("Flatten", ["g"], ["f"], name="Flatten_5"),
        helper.make_node("MatMul", ["f", "fcw"], ["mm"], name="MatMul_95"),
        helper.make_node(
            "BatchNormalization",
            ["mm", "bn_scale", "bn_bias", "bn_mean", "bn_var"],
            ["fc1"],
            name="BatchNormalization_96",
        ),
        helper.make_node("Mul", ["fc1", "two"], ["embedding"], name="Mul_97"),
    ]
    graph = helper.make_graph(
        nodes,
        "arcface_like",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 512])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def arcface_partition() -> Partition:
    return Partition(
        index=0,
        nodes=[
            "Sub_0",
            "Mul_1",
            "Conv_2",
            "Relu_3",
            "GlobalAveragePool_4",
            "Flatten_5",
            "MatMul_95",
            "BatchNormalization_96",
        ],
        start_nodes=["Conv_2"],
        end_nodes=["BatchNormalization_96"],
        inputs=[TensorSpec("x", [1, 3, 112, 112], "float32")],
        outputs=[TensorSpec("fc1", [1, 512], "float32")],
    )


def arcface_normalization():
    from hailo_ort.partition.types import Normalization

    return Normalization("x", [127.5] * 3, [128.0] * 3, nodes=["Sub_0", "Mul_1"])


def arcface_feeds(n: int, seed: int = 2) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.integers(0, 256, (1, 3, 112, 112)).astype(np.float32)} for _ in range(n)]
