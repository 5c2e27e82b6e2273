"""Built-in example models (``"example:NAME"``), built with ``onnx.helper`` and seeded weights.

They are small (milliseconds on a CPU), valid for ``onnx.checker`` and stock onnxruntime,
opset 17, IR version 8, and shaped like real exports so every stage can be tried without
downloading anything:

* ``yolov8n``: an Ultralytics YOLOv8-export-like detector, input ``images`` [1,3,160,160],
  output ``output0`` [1,84,525]; head nodes named as the real export
  (``/model.22/cv2.0/cv2.0.0/conv/Conv`` ...), followed by the export's CPU tail (DFL, anchor
  math from a ``Shape → Gather → Range → Expand`` chain, Sigmoid, Concat).
* ``resnet18``: ResNet-like classifier (Conv/BatchNormalization/Relu, residual Add, MaxPool,
  GlobalAveragePool, Flatten, Gemm, Softmax), input ``input`` [1,3,112,112].
* ``mobilenet_v2``: inverted residuals with depthwise convs and Clip(0, 6), ending in Gemm and
  Softmax, input ``input`` [1,3,112,112].

Both classifiers start with ``Sub`` mean / ``Div`` std by constants. :func:`synthetic` builds a
large CNN-like graph of about ``num_nodes`` nodes for benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .errors import ModelError

OPSET = 17
IR_VERSION = 8


class _Builder:
    """Collects nodes and initializers; every helper returns its output tensor name."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def i64(self, name: str, values: Sequence[int] | int) -> str:
        return self.const(name, np.array(values, dtype=np.int64))

    def f32(self, name: str, values: Sequence[float] | float | np.ndarray) -> str:
        return self.const(name, np.array(values, dtype=np.float32))

    def op(
        self,
        op_type: str,
        inputs: Sequence[str],
        name: str,
        outputs: Sequence[str] | int = 1,
        **attrs: object,
    ) -> str | list[str]:
        """Add a node named ``name``; outputs are ``<name>_output_<k>`` unless given."""
        if isinstance(outputs, int):
            out_names = [f"{name}_output_{k}" for k in range(outputs)]
        else:
            out_names = list(outputs)
        self.nodes.append(helper.make_node(op_type, list(inputs), out_names, name=name, **attrs))
        return out_names[0] if len(out_names) == 1 else out_names

    def conv_weights(
        self, prefix: str, cin: int, cout: int, k: int, group: int = 1
    ) -> tuple[str, str]:
        fan_in = cin // group * k * k
        w = self.rng.standard_normal((cout, cin // group, k, k)).astype(np.float32)
        w *= np.float32(np.sqrt(2.0 / fan_in))
        b = (self.rng.standard_normal(cout) * 0.05).astype(np.float32)
        return self.const(f"{prefix}.weight", w), self.const(f"{prefix}.bias", b)

    def conv(
        self,
        x: str,
        cin: int,
        cout: int,
        k: int,
        stride: int = 1,
        name: str = "",
        group: int = 1,
        weight_name: str = "",
    ) -> str:
        w, b = self.conv_weights(weight_name or name, cin, cout, k, group)
        return self.op(  # type: ignore[return-value]
            "Conv",
            [x, w, b],
            name,
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[k // 2] * 4,
            group=group,
            dilations=[1, 1],
        )

    def model(
        self,
        name: str,
        inputs: Sequence[onnx.ValueInfoProto],
        outputs: Sequence[onnx.ValueInfoProto],
    ) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, list(inputs), list(outputs), self.inits)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION,
            producer_name="hailo-ort.zoo",
        )
        return model


# ----------------------------------------------------------------------------------- YOLOv8
def _yolo_conv(b: _Builder, x: str, cin: int, cout: int, k: int, s: int, prefix: str) -> str:
    """Conv + SiLU as the Ultralytics export writes it (Conv, Sigmoid, Mul)."""
    y = b.conv(x, cin, cout, k, s, name=f"{prefix}/conv/Conv", weight_name=f"{prefix}.conv")
    sig = b.op("Sigmoid", [y], f"{prefix}/act/Sigmoid")
    return b.op("Mul", [y, sig], f"{prefix}/act/Mul")  # type: ignore[return-value]


def _c2f(b: _Builder, x: str, cin: int, cout: int, prefix: str, shortcut: bool) -> str:
    c = cout // 2
    y = _yolo_conv(b, x, cin, 2 * c, 1, 1, f"{prefix}/cv1")
    split = b.i64(f"{prefix}/split", [c, c])
    y0, y1 = b.op("Split", [y, split], f"{prefix}/Split", outputs=2, axis=1)
    m = _yolo_conv(b, y1, c, c, 3, 1, f"{prefix}/m.0/cv1")
    m = _yolo_conv(b, m, c, c, 3, 1, f"{prefix}/m.0/cv2")
    if shortcut:
        m = b.op("Add", [y1, m], f"{prefix}/m.0/Add")  # type: ignore[assignment]
    cat = b.op("Concat", [y0, y1, m], f"{prefix}/Concat", axis=1)
    return _yolo_conv(b, cat, 3 * c, cout, 1, 1, f"{prefix}/cv2")  # type: ignore[arg-type]


def _sppf(b: _Builder, x: str, cin: int, cout: int, prefix: str) -> str:
    c = cin // 2
    y = _yolo_conv(b, x, cin, c, 1, 1, f"{prefix}/cv1")
    pools = [y]
    for k in range(3):
        suffix = f"_{k}" if k else ""
        pools.append(
            b.op(  # type: ignore[arg-type]
                "MaxPool",
                [pools[-1]],
                f"{prefix}/m/MaxPool{suffix}",
                kernel_shape=[5, 5],
                strides=[1, 1],
                pads=[2, 2, 2, 2],
            )
        )
    cat = b.op("Concat", pools, f"{prefix}/Concat", axis=1)
    return _yolo_conv(b, cat, 4 * c, cout, 1, 1, f"{prefix}/cv2")  # type: ignore[arg-type]


def _upsample(b: _Builder, x: str, prefix: str) -> str:
    scales = b.f32(f"{prefix}/scales", [1.0, 1.0, 2.0, 2.0])
    return b.op(  # type: ignore[return-value]
        "Resize", [x, "", scales], f"{prefix}/Resize", mode="nearest", nearest_mode="floor"
    )


def _anchor_chain(b: _Builder, feature: str, stride: float, i: int) -> tuple[str, str]:
    """Anchor points [H*W, 2] and strides [H*W, 1] of one feature map, computed from its shape
    (``Shape → Gather → Cast → Range → Expand``) as a dynamic export would."""
    p = f"/model.22/anchors.{i}"
    shape = b.op("Shape", [feature], f"{p}/Shape")
    h = b.op("Gather", [shape, b.i64(f"{p}/idx_h", 2)], f"{p}/Gather", axis=0)
    w = b.op("Gather", [shape, b.i64(f"{p}/idx_w", 3)], f"{p}/Gather_1", axis=0)
    hf = b.op("Cast", [h], f"{p}/Cast", to=TensorProto.FLOAT)
    wf = b.op("Cast", [w], f"{p}/Cast_1", to=TensorProto.FLOAT)
    zero, one, half = b.f32(f"{p}/zero", 0.0), b.f32(f"{p}/one", 1.0), b.f32(f"{p}/half", 0.5)
    sx = b.op("Add", [b.op("Range", [zero, wf, one], f"{p}/Range"), half], f"{p}/Add")
    sy = b.op("Add", [b.op("Range", [zero, hf, one], f"{p}/Range_1"), half], f"{p}/Add_1")
    ax0, ax1, axm1 = b.i64(f"{p}/ax0", [0]), b.i64(f"{p}/ax1", [1]), b.i64(f"{p}/axm1", [-1])
    sx = b.op("Unsqueeze", [sx, ax0], f"{p}/Unsqueeze")  # [1, W]
    sy = b.op("Unsqueeze", [sy, ax1], f"{p}/Unsqueeze_1")  # [H, 1]
    h1 = b.op("Unsqueeze", [h, ax0], f"{p}/Unsqueeze_2")
    w1 = b.op("Unsqueeze", [w, ax0], f"{p}/Unsqueeze_3")
    hw = b.op("Concat", [h1, w1], f"{p}/Concat", axis=0)
    gx = b.op("Expand", [sx, hw], f"{p}/Expand")  # [H, W]
    gy = b.op("Expand", [sy, hw], f"{p}/Expand_1")
    gx = b.op("Unsqueeze", [gx, axm1], f"{p}/Unsqueeze_4")
    gy = b.op("Unsqueeze", [gy, axm1], f"{p}/Unsqueeze_5")
    xy = b.op("Concat", [gx, gy], f"{p}/Concat_1", axis=-1)  # [H, W, 2]
    points = b.op("Reshape", [xy, b.i64(f"{p}/shape_pts", [-1, 2])], f"{p}/Reshape")
    n = b.op("Mul", [h1, w1], f"{p}/Mul")  # [1] = H*W
    n_shape = b.op("Concat", [n, b.i64(f"{p}/one_i", [1])], f"{p}/Concat_2", axis=0)
    strides = b.op(
        "ConstantOfShape",
        [n_shape],
        f"{p}/ConstantOfShape",
        value=helper.make_tensor("value", TensorProto.FLOAT, [1], [stride]),
    )
    return points, strides  # type: ignore[return-value]


def yolov8n(size: int = 160, num_classes: int = 80) -> onnx.ModelProto:
    """A YOLOv8n-export-like detector (see the module docstring)."""
    b = _Builder(seed=8)
    x = "images"
    x = _yolo_conv(b, x, 3, 8, 3, 2, "/model.0")
    x = _yolo_conv(b, x, 8, 16, 3, 2, "/model.1")
    x = _c2f(b, x, 16, 16, "/model.2", shortcut=True)
    x = _yolo_conv(b, x, 16, 32, 3, 2, "/model.3")
    p3 = _c2f(b, x, 32, 32, "/model.4", shortcut=True)  # stride 8
    x = _yolo_conv(b, p3, 32, 48, 3, 2, "/model.5")
    p4 = _c2f(b, x, 48, 48, "/model.6", shortcut=True)  # stride 16
    x = _yolo_conv(b, p4, 48, 64, 3, 2, "/model.7")
    x = _c2f(b, x, 64, 64, "/model.8", shortcut=True)
    p5 = _sppf(b, x, 64, 64, "/model.9")  # stride 32
    x = _upsample(b, p5, "/model.10")
    x = b.op("Concat", [x, p4], "/model.11/Concat", axis=1)
    n4 = _c2f(b, x, 112, 48, "/model.12", shortcut=False)
    x = _upsample(b, n4, "/model.13")
    x = b.op("Concat", [x, p3], "/model.14/Concat", axis=1)
    o3 = _c2f(b, x, 80, 32, "/model.15", shortcut=False)
    x = _yolo_conv(b, o3, 32, 32, 3, 2, "/model.16")
    x = b.op("Concat", [x, n4], "/model.17/Concat", axis=1)
    o4 = _c2f(b, x, 80, 48, "/model.18", shortcut=False)
    x = _yolo_conv(b, o4, 48, 48, 3, 2, "/model.19")
    x = b.op("Concat", [x, p5], "/model.20/Concat", axis=1)
    o5 = _c2f(b, x, 112, 64, "/model.21", shortcut=False)

    reg_max, hidden = 16, 32
    no = 4 * reg_max + num_classes
    flat: list[str] = []
    anchor_points: list[str] = []
    anchor_strides: list[str] = []
    for i, (feat, ch, stride) in enumerate(((o3, 32, 8.0), (o4, 48, 16.0), (o5, 64, 32.0))):
        outs = []
        for head, cout in (("cv2", 4 * reg_max), ("cv3", num_classes)):
            p = f"/model.22/{head}.{i}"
            y = _yolo_conv(b, feat, ch, hidden, 3, 1, f"{p}/{head}.{i}.0")
            y = _yolo_conv(b, y, hidden, hidden, 3, 1, f"{p}/{head}.{i}.1")
            y = b.conv(y, hidden, cout, 1, 1, name=f"{p}/{head}.{i}.2/Conv", weight_name=f"{p}.2")
            outs.append(y)
        suffix = f"_{i}" if i else ""
        cat = b.op("Concat", outs, f"/model.22/Concat{suffix}", axis=1)
        flat.append(
            b.op(  # type: ignore[arg-type]
                "Reshape",
                [cat, b.i64(f"/model.22/shape{i}", [1, no, -1])],
                f"/model.22/Reshape{suffix}",
            )
        )
        pts, strd = _anchor_chain(b, feat, stride, i)
        anchor_points.append(pts)
        anchor_strides.append(strd)
    x = b.op("Concat", flat, "/model.22/Concat_3", axis=2)  # [1, no, N]
    box, cls = b.op(
        "Split",
        [x, b.i64("/model.22/split", [4 * reg_max, num_classes])],
        "/model.22/Split",
        outputs=2,
        axis=1,
    )
    # DFL: softmax over the 16 bins, expectation by a 1x1 conv with arange weights.
    d = b.op(
        "Reshape", [box, b.i64("/model.22/dfl/shape", [1, 4, reg_max, -1])], "/model.22/dfl/Reshape"
    )
    d = b.op("Transpose", [d], "/model.22/dfl/Transpose", perm=[0, 2, 1, 3])
    d = b.op("Softmax", [d], "/model.22/dfl/Softmax", axis=1)
    dfl_w = b.f32(
        "model.22.dfl.conv.weight", np.arange(reg_max, dtype=np.float32).reshape(1, reg_max, 1, 1)
    )
    d = b.op("Conv", [d, dfl_w], "/model.22/dfl/conv/Conv", kernel_shape=[1, 1])
    d = b.op("Reshape", [d, b.i64("/model.22/dfl/shape_1", [1, 4, -1])], "/model.22/dfl/Reshape_1")
    # Anchors [1, 2, N] and strides [1, 1, N] from the per-scale chains.
    pts = b.op("Concat", anchor_points, "/model.22/Concat_anchors", axis=0)  # [N, 2]
    pts = b.op("Transpose", [pts], "/model.22/Transpose_anchors", perm=[1, 0])
    anchors = b.op("Unsqueeze", [pts, b.i64("/model.22/ax0", [0])], "/model.22/Unsqueeze")
    strd = b.op("Concat", anchor_strides, "/model.22/Concat_strides", axis=0)  # [N, 1]
    strd = b.op("Transpose", [strd], "/model.22/Transpose_strides", perm=[1, 0])
    strides = b.op("Unsqueeze", [strd, b.i64("/model.22/ax0_1", [0])], "/model.22/Unsqueeze_1")
    # dist2bbox (xywh) then scale by stride.
    starts, mids, ends = (b.i64(f"/model.22/sl{k}", [v]) for k, v in enumerate((0, 2, 4)))
    axis1 = b.i64("/model.22/sl_axis", [1])
    lt = b.op("Slice", [d, starts, mids, axis1], "/model.22/Slice")
    rb = b.op("Slice", [d, mids, ends, axis1], "/model.22/Slice_1")
    x1y1 = b.op("Sub", [anchors, lt], "/model.22/Sub")
    x2y2 = b.op("Add", [anchors, rb], "/model.22/Add_1")
    c_xy = b.op(
        "Div",
        [b.op("Add", [x1y1, x2y2], "/model.22/Add_2"), b.f32("/model.22/two", 2.0)],
        "/model.22/Div_1",
    )
    wh = b.op("Sub", [x2y2, x1y1], "/model.22/Sub_1")
    dbox = b.op("Concat", [c_xy, wh], "/model.22/Concat_4", axis=1)
    dbox = b.op("Mul", [dbox, strides], "/model.22/Mul_2")
    scores = b.op("Sigmoid", [cls], "/model.22/Sigmoid")
    b.op("Concat", [dbox, scores], "/model.22/Concat_5", outputs=["output0"], axis=1)

    n_anchors = sum((size // s) ** 2 for s in (8, 16, 32))
    return b.model(
        "main_graph",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [
            helper.make_tensor_value_info(
                "output0", TensorProto.FLOAT, [1, 4 + num_classes, n_anchors]
            )
        ],
    )


# ----------------------------------------------------------------------------- classifiers
def _normalize(b: _Builder, x: str) -> str:
    mean = b.f32("mean", np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1))
    std = b.f32("std", np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1))
    x = b.op("Sub", [x, mean], "normalize/Sub")  # type: ignore[assignment]
    return b.op("Div", [x, std], "normalize/Div")  # type: ignore[return-value]


def _classifier_tail(b: _Builder, x: str, channels: int, classes: int) -> None:
    x = b.op("GlobalAveragePool", [x], "head/GlobalAveragePool")  # type: ignore[assignment]
    x = b.op("Flatten", [x], "head/Flatten", axis=1)  # type: ignore[assignment]
    w = b.f32("fc.weight", b.rng.standard_normal((classes, channels)) * np.sqrt(1.0 / channels))
    bias = b.f32("fc.bias", b.rng.standard_normal(classes) * 0.01)
    x = b.op("Gemm", [x, w, bias], "head/fc/Gemm", transB=1)  # type: ignore[assignment]
    b.op("Softmax", [x], "head/Softmax", outputs=["probs"], axis=1)


def _bn(b: _Builder, x: str, c: int, name: str, gamma: float = 1.0) -> str:
    scale = b.f32(f"{name}.scale", gamma * (1.0 + 0.1 * b.rng.standard_normal(c)))
    shift = b.f32(f"{name}.shift", 0.05 * b.rng.standard_normal(c))
    mean = b.f32(f"{name}.mean", 0.05 * b.rng.standard_normal(c))
    var = b.f32(f"{name}.var", 1.0 + 0.1 * np.abs(b.rng.standard_normal(c)))
    return b.op("BatchNormalization", [x, scale, shift, mean, var], name, epsilon=1e-5)  # type: ignore[return-value]


def resnet18(size: int = 112, classes: int = 1000) -> onnx.ModelProto:
    """A ResNet-18-like classifier with narrow channels (see the module docstring)."""
    b = _Builder(seed=18)
    x = _normalize(b, "input")
    x = b.conv(x, 3, 8, 7, 2, name="conv1/Conv", weight_name="conv1")
    x = b.op("Relu", [_bn(b, x, 8, "bn1/BatchNormalization")], "relu/Relu")
    x = b.op("MaxPool", [x], "maxpool/MaxPool", kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)
    cin = 8
    for stage, cout in enumerate((8, 16, 32, 64), start=1):
        for block in range(2):
            stride = 2 if stage > 1 and block == 0 else 1
            p = f"layer{stage}.{block}"
            y = b.conv(x, cin, cout, 3, stride, name=f"{p}/conv1/Conv", weight_name=f"{p}.conv1")
            y = b.op("Relu", [_bn(b, y, cout, f"{p}/bn1/BatchNormalization")], f"{p}/relu/Relu")
            y = b.conv(y, cout, cout, 3, 1, name=f"{p}/conv2/Conv", weight_name=f"{p}.conv2")
            y = _bn(b, y, cout, f"{p}/bn2/BatchNormalization", gamma=0.3)
            skip = x
            if stride != 1 or cin != cout:
                skip = b.conv(
                    x, cin, cout, 1, stride, name=f"{p}/downsample/Conv", weight_name=f"{p}.down"
                )
            x = b.op("Relu", [b.op("Add", [y, skip], f"{p}/Add")], f"{p}/relu_1/Relu")
            cin = cout
    _classifier_tail(b, x, cin, classes)
    return b.model(
        "resnet18",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, classes])],
    )


def mobilenet_v2(size: int = 112, classes: int = 1000) -> onnx.ModelProto:
    """A MobileNetV2-like classifier with narrow channels (see the module docstring)."""
    b = _Builder(seed=2)
    lo, hi = b.f32("relu6_min", 0.0), b.f32("relu6_max", 6.0)

    def relu6(t: str, name: str) -> str:
        return b.op("Clip", [t, lo, hi], name)  # type: ignore[return-value]

    x = _normalize(b, "input")
    x = relu6(
        b.conv(x, 3, 8, 3, 2, name="features.0/Conv", weight_name="features.0"), "features.0/Clip"
    )
    cin, index = 8, 1
    for t, c, n, s in ((1, 8, 1, 1), (6, 12, 2, 2), (6, 16, 2, 2), (6, 24, 2, 2), (6, 32, 1, 1)):
        for k in range(n):
            stride = s if k == 0 else 1
            p = f"features.{index}"
            hidden = cin * t
            y = x
            if t != 1:
                y = relu6(
                    b.conv(
                        y, cin, hidden, 1, 1, name=f"{p}/expand/Conv", weight_name=f"{p}.expand"
                    ),
                    f"{p}/expand/Clip",
                )
            y = b.conv(
                y,
                hidden,
                hidden,
                3,
                stride,
                name=f"{p}/dw/Conv",
                group=hidden,
                weight_name=f"{p}.dw",
            )
            y = relu6(y, f"{p}/dw/Clip")
            y = b.conv(y, hidden, c, 1, 1, name=f"{p}/project/Conv", weight_name=f"{p}.project")
            if stride == 1 and cin == c:
                y = b.op("Add", [x, y], f"{p}/Add")  # type: ignore[assignment]
            x, cin, index = y, c, index + 1
    x = relu6(
        b.conv(x, cin, 128, 1, 1, name=f"features.{index}/Conv", weight_name=f"features.{index}"),
        f"features.{index}/Clip",
    )
    _classifier_tail(b, x, 128, classes)
    return b.model(
        "mobilenet_v2",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, classes])],
    )


# ------------------------------------------------------------------------------- synthetic
def synthetic(num_nodes: int, channels: int = 4, size: int = 16, seed: int = 0) -> onnx.ModelProto:
    """A valid CNN-like graph of about ``num_nodes`` nodes (at least ~10), for benchmarks.

    Repeats a residual block (Conv → Relu → Conv → Add(skip) → Relu, 1×1 convs with every
    fourth one 3×3); every 50th block inserts a CPU-only op (TopK over channels, CumSum, Sin)
    in the middle of the chain. Tiny channel counts keep the file small.
    """
    if num_nodes < 1:
        raise ModelError(f"synthetic: num_nodes must be positive, got {num_nodes}")
    rng = np.random.default_rng(seed)
    c = channels
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    make_node = helper.make_node
    k_top = numpy_helper.from_array(np.array([c], dtype=np.int64), "topk_k")
    axis1 = numpy_helper.from_array(np.array(1, dtype=np.int64), "cumsum_axis")
    inits += [k_top, axis1]
    x = "input"
    conv_id = 0

    def conv(inp: str, k: int) -> str:
        nonlocal conv_id
        w = (rng.standard_normal((c, c, k, k)) * np.sqrt(1.0 / (c * k * k))).astype(np.float32)
        wn, bn, out = f"w{conv_id}", f"b{conv_id}", f"conv{conv_id}"
        inits.append(numpy_helper.from_array(w, wn))
        inits.append(numpy_helper.from_array(np.zeros(c, np.float32), bn))
        nodes.append(
            make_node(
                "Conv",
                [inp, wn, bn],
                [out],
                name=f"Conv_{conv_id}",
                kernel_shape=[k, k],
                pads=[k // 2] * 4,
            )
        )
        conv_id += 1
        return out

    block = 0
    while len(nodes) < num_nodes - 1:
        p = f"b{block}"
        k = 3 if block % 4 == 0 else 1
        y = conv(x, k)
        nodes.append(make_node("Relu", [y], [f"{p}_relu"], name=f"{p}/Relu"))
        y = f"{p}_relu"
        if block % 50 == 25:
            kind = (block // 50) % 3
            if kind == 0:
                nodes.append(
                    make_node(
                        "TopK",
                        [y, "topk_k"],
                        [f"{p}_topk", f"{p}_topk_i"],
                        name=f"{p}/TopK",
                        axis=1,
                    )
                )
                y = f"{p}_topk"
            elif kind == 1:
                nodes.append(
                    make_node("CumSum", [y, "cumsum_axis"], [f"{p}_cumsum"], name=f"{p}/CumSum")
                )
                y = f"{p}_cumsum"
            else:
                nodes.append(make_node("Sin", [y], [f"{p}_sin"], name=f"{p}/Sin"))
                y = f"{p}_sin"
        y = conv(y, 1)
        nodes.append(make_node("Add", [y, x], [f"{p}_add"], name=f"{p}/Add"))
        nodes.append(make_node("Relu", [f"{p}_add"], [f"{p}_out"], name=f"{p}/Relu_1"))
        x = f"{p}_out"
        block += 1
    nodes.append(make_node("GlobalAveragePool", [x], ["output"], name="GlobalAveragePool"))
    graph = helper.make_graph(
        nodes,
        f"synthetic_{num_nodes}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, c, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, c, 1, 1])],
        inits,
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="hailo-ort.zoo",
    )


EXAMPLES: dict[str, Callable[[], onnx.ModelProto]] = {
    "yolov8n": yolov8n,
    "resnet18": resnet18,
    "mobilenet_v2": mobilenet_v2,
}


def get_example(name: str) -> onnx.ModelProto:
    """The built-in example ``name`` (also ``synthetic:N`` / ``synthetic-N`` for N nodes)."""
    key = name.strip()
    for prefix in ("synthetic:", "synthetic-", "synthetic_"):
        if key.startswith(prefix):
            count = key[len(prefix) :]
            if not count.isdigit() or int(count) <= 0:
                raise ModelError(f"example {name!r}: expected synthetic:N with a positive N")
            return synthetic(int(count))
    if key not in EXAMPLES:
        valid = ", ".join([*sorted(EXAMPLES), "synthetic:N"])
        raise ModelError(f"unknown example {name!r}; valid examples: {valid}")
    return EXAMPLES[key]()


# ---------------------------------------------------------------------------- sample inputs
def synthetic_images(count: int, shape: Sequence[int] = (3, 112, 112), seed: int = 0) -> np.ndarray:
    """``count`` image-like float32 arrays ``[count, C, H, W]`` in 0..1, for the examples.

    Each is a smooth colour gradient with a few filled rectangles and discs of random colour
    and a little noise: structured like photographs (flat regions, edges), unlike uniform
    noise, so quantization ranges calibrated on them resemble those of real images. No
    downloads; deterministic for a ``seed``.
    """
    if count < 1:
        raise ModelError(f"synthetic_images: count must be positive, got {count}")
    if len(shape) != 3 or min(int(d) for d in shape) < 1:
        raise ModelError(f"synthetic_images: shape must be (C, H, W), got {list(shape)}")
    c, h, w = (int(d) for d in shape)
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0.0, 1.0, h), np.linspace(0.0, 1.0, w), indexing="ij")
    images = np.empty((count, c, h, w), np.float32)
    for k in range(count):
        a, bx, by = rng.random((3, c, 1, 1))
        img = 0.5 * a + 0.5 * (bx * xx + by * (1.0 - yy))
        for _ in range(int(rng.integers(2, 6))):
            colour = rng.random((c, 1, 1))
            cy, cx = rng.random(2)
            ry, rx = 0.05 + 0.25 * rng.random(2)
            if rng.random() < 0.5:
                mask = (np.abs(yy - cy) < ry) & (np.abs(xx - cx) < rx)
            else:
                mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1.0
            img = np.where(mask, colour, img)
        img = img + 0.02 * rng.standard_normal((c, h, w))
        images[k] = np.clip(img, 0.0, 1.0)
    return images
