"""Small ONNX test graphs built with onnx.helper: a YOLOv8-like detector (Ultralytics node names
and head/tail structure), a ResNet-like classifier, and variants for the partitioner tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(0)


class Builder:
    """Tiny graph builder that tracks NCHW shapes so weights can be made to fit."""

    def __init__(self, opset: int = 17) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.shapes: dict[str, list[int]] = {}
        self.opset = opset
        self._n = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(
        self,
        op: str,
        inputs: list[str],
        name: str,
        out_shape: list[int] | None = None,
        n_out: int = 1,
        **attrs,
    ) -> str | list[str]:
        outs = [f"{name}_output_{k}" for k in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        if out_shape is not None:
            self.shapes[outs[0]] = out_shape
        return outs[0] if n_out == 1 else outs

    def conv(
        self,
        x: str,
        name: str,
        cout: int,
        k: int = 3,
        s: int = 1,
        bias: bool = True,
        group: int = 1,
    ) -> str:
        n, c, h, w = self.shapes[x]
        wt = self.const(
            f"{name}.weight",
            (RNG.standard_normal((cout, c // group, k, k)) * 0.1).astype(np.float32),
        )
        ins = [x, wt]
        if bias:
            ins.append(self.const(f"{name}.bias", np.zeros(cout, np.float32)))
        p = k // 2
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        return self.node(
            "Conv",
            ins,
            name,
            [n, cout, oh, ow],
            kernel_shape=[k, k],
            strides=[s, s],
            pads=[p, p, p, p],
            group=group,
        )

    def silu(self, x: str, prefix: str) -> str:
        sig = self.node("Sigmoid", [x], f"{prefix}/Sigmoid", self.shapes[x])
        return self.node("Mul", [x, sig], f"{prefix}/Mul", self.shapes[x])

    def conv_silu(self, x: str, prefix: str, cout: int, k: int = 3, s: int = 1) -> str:
        return self.silu(self.conv(x, f"{prefix}/conv/Conv", cout, k, s), f"{prefix}/act")

    def model(
        self, inputs: list[onnx.ValueInfoProto], outputs: list[str], out_dtype=TensorProto.FLOAT
    ) -> onnx.ModelProto:
        outs = [helper.make_tensor_value_info(o, out_dtype, self.shapes.get(o)) for o in outputs]
        g = helper.make_graph(self.nodes, "test", inputs, outs, initializer=self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m


YOLO_HEAD_CONVS = [f"/model.22/cv{b}.{i}/cv{b}.{i}.2/Conv" for i in range(3) for b in (2, 3)]


def yolov8_like(size: int = 64, nc: int = 4, reg_max: int = 16) -> onnx.ModelProto:
    """A scaled-down YOLOv8 graph: strides 8/16/32, C2f-style Split/Concat blocks, an upsampling
    neck, the Ultralytics Detect head (cv2 box / cv3 class branches, ``/model.22/...`` names) and
    the export's tail: per-scale Concat, Reshape, Concat, Split, DFL (Reshape, Transpose, Softmax,
    1x1 Conv), anchor decoding (Slice, Sub, Add, Div, Concat, Mul by strides) and Sigmoid."""
    b = Builder()
    b.shapes["images"] = [1, 3, size, size]
    x = b.conv_silu("images", "/model.0", 8, 3, 2)  # /2
    x = b.conv_silu(x, "/model.1", 16, 3, 2)  # /4
    # C2f-like block: 1x1 conv, Split along channels, conv on one half, Concat, 1x1 conv
    y = b.conv_silu(x, "/model.2/cv1", 16, 1)
    halves = b.node(
        "Split",
        [y, b.const("/model.2/split", np.array([8, 8], np.int64))],
        "/model.2/Split",
        n_out=2,
        axis=1,
    )
    for h in halves:
        b.shapes[h] = [1, 8, size // 4, size // 4]
    z = b.conv_silu(halves[1], "/model.2/m.0/cv1", 8)
    cat = b.node(
        "Concat",
        [halves[0], halves[1], z],
        "/model.2/Concat",
        [1, 24, size // 4, size // 4],
        axis=1,
    )
    x = b.conv_silu(cat, "/model.2/cv2", 16, 1)
    p3 = b.conv_silu(x, "/model.3", 16, 3, 2)  # /8
    p4 = b.conv_silu(p3, "/model.5", 24, 3, 2)  # /16
    p5 = b.conv_silu(p4, "/model.7", 32, 3, 2)  # /32
    pool = b.node(
        "MaxPool",
        [p5],
        "/model.9/m/MaxPool",
        b.shapes[p5],
        kernel_shape=[5, 5],
        strides=[1, 1],
        pads=[2, 2, 2, 2],
    )
    p5 = b.conv_silu(pool, "/model.9/cv2", 32, 1)
    up = b.node(
        "Resize",
        [p5, "", b.const("/model.10/scales", np.array([1, 1, 2, 2], np.float32))],
        "/model.10/Resize",
        [1, 32, size // 16, size // 16],
        mode="nearest",
    )
    n4 = b.node("Concat", [up, p4], "/model.11/Concat", [1, 56, size // 16, size // 16], axis=1)
    n4 = b.conv_silu(n4, "/model.12", 24, 1)
    up3 = b.node(
        "Resize",
        [n4, "", b.const("/model.13/scales", np.array([1, 1, 2, 2], np.float32))],
        "/model.13/Resize",
        [1, 24, size // 8, size // 8],
        mode="nearest",
    )
    n3 = b.node("Concat", [up3, p3], "/model.14/Concat", [1, 40, size // 8, size // 8], axis=1)
    n3 = b.conv_silu(n3, "/model.15", 16, 1)
    feats = [n3, n4, p5]
    per_scale = []
    anchors_total = 0
    for i, f in enumerate(feats):
        box = b.conv_silu(f, f"/model.22/cv2.{i}/cv2.{i}.0", 16)
        box = b.conv_silu(box, f"/model.22/cv2.{i}/cv2.{i}.1", 16)
        box = b.conv(box, f"/model.22/cv2.{i}/cv2.{i}.2/Conv", 4 * reg_max, 1)
        cls = b.conv_silu(f, f"/model.22/cv3.{i}/cv3.{i}.0", 16)
        cls = b.conv_silu(cls, f"/model.22/cv3.{i}/cv3.{i}.1", 16)
        cls = b.conv(cls, f"/model.22/cv3.{i}/cv3.{i}.2/Conv", nc, 1)
        h, w = b.shapes[box][2:]
        cat = b.node(
            "Concat",
            [box, cls],
            f"/model.22/Concat{'_' + str(i) if i else ''}",
            [1, 4 * reg_max + nc, h, w],
            axis=1,
        )
        per_scale.append((cat, h * w))
        anchors_total += h * w
    c = 4 * reg_max + nc
    flat = []
    for i, (cat, hw) in enumerate(per_scale):
        shape = b.const(f"/model.22/Constant_{i}", np.array([1, c, -1], np.int64))
        flat.append(
            b.node(
                "Reshape", [cat, shape], f"/model.22/Reshape{'_' + str(i) if i else ''}", [1, c, hw]
            )
        )
    a = anchors_total
    allx = b.node("Concat", flat, "/model.22/Concat_3", [1, c, a], axis=2)
    boxd, clsd = b.node(
        "Split",
        [allx, b.const("/model.22/split", np.array([4 * reg_max, nc], np.int64))],
        "/model.22/Split",
        n_out=2,
        axis=1,
    )
    d = b.node(
        "Reshape",
        [boxd, b.const("/model.22/dfl/shape", np.array([1, 4, reg_max, a], np.int64))],
        "/model.22/dfl/Reshape",
        [1, 4, reg_max, a],
    )
    d = b.node("Transpose", [d], "/model.22/dfl/Transpose", [1, reg_max, 4, a], perm=[0, 2, 1, 3])
    d = b.node("Softmax", [d], "/model.22/dfl/Softmax", [1, reg_max, 4, a], axis=1)
    dw = b.const(
        "model.22.dfl.conv.weight", np.arange(reg_max, dtype=np.float32).reshape(1, reg_max, 1, 1)
    )
    d = b.node("Conv", [d, dw], "/model.22/dfl/conv/Conv", [1, 1, 4, a], kernel_shape=[1, 1])
    d = b.node(
        "Reshape",
        [d, b.const("/model.22/dfl/shape1", np.array([1, 4, a], np.int64))],
        "/model.22/dfl/Reshape_1",
        [1, 4, a],
    )
    lt = b.node(
        "Slice",
        [
            d,
            b.const("s0", np.array([0], np.int64)),
            b.const("e0", np.array([2], np.int64)),
            b.const("ax", np.array([1], np.int64)),
        ],
        "/model.22/Slice",
        [1, 2, a],
    )
    rb = b.node(
        "Slice",
        [d, b.const("s1", np.array([2], np.int64)), b.const("e1", np.array([4], np.int64)), "ax"],
        "/model.22/Slice_1",
        [1, 2, a],
    )
    anchors = b.const("/model.22/Constant_anchors", RNG.random((1, 2, a)).astype(np.float32))
    x1y1 = b.node("Sub", [anchors, lt], "/model.22/Sub", [1, 2, a])
    x2y2 = b.node("Add", [anchors, rb], "/model.22/Add_1", [1, 2, a])
    csum = b.node("Add", [x1y1, x2y2], "/model.22/Add_2", [1, 2, a])
    cxy = b.node(
        "Div", [csum, b.const("two", np.array(2.0, np.float32))], "/model.22/Div_1", [1, 2, a]
    )
    wh = b.node("Sub", [x2y2, x1y1], "/model.22/Sub_1", [1, 2, a])
    dbox = b.node("Concat", [cxy, wh], "/model.22/Concat_4", [1, 4, a], axis=1)
    strides = b.const("/model.22/Constant_strides", np.ones((1, a), np.float32) * 8)
    dbox = b.node("Mul", [dbox, strides], "/model.22/Mul_2", [1, 4, a])
    sig = b.node("Sigmoid", [clsd], "/model.22/Sigmoid", [1, nc, a])
    out = b.node("Concat", [dbox, sig], "/model.22/Concat_5", [1, 4 + nc, a], axis=1)
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])
    return b.model([inp], [out])


def resnet_like(
    size: int = 32, classes: int = 10, softmax: bool = True, dynamic_batch: bool = False
) -> onnx.ModelProto:
    """Conv-BN-ReLU stem, MaxPool, two residual blocks, GlobalAveragePool, Flatten, Gemm, Softmax."""
    b = Builder()
    b.shapes["input"] = [1, 3, size, size]

    def bn(x: str, name: str) -> str:
        c = b.shapes[x][1]
        ins = [x] + [
            b.const(f"{name}.{k}", v)
            for k, v in (
                ("scale", np.ones(c, np.float32)),
                ("bias", np.zeros(c, np.float32)),
                ("mean", np.zeros(c, np.float32)),
                ("var", np.ones(c, np.float32)),
            )
        ]
        return b.node("BatchNormalization", ins, name, b.shapes[x])

    x = b.node(
        "Relu",
        [bn(b.conv("input", "conv1", 16, 7, 2, bias=False), "bn1")],
        "relu1",
        [1, 16, size // 2, size // 2],
    )
    x = b.node(
        "MaxPool",
        [x],
        "maxpool",
        [1, 16, size // 4, size // 4],
        kernel_shape=[3, 3],
        strides=[2, 2],
        pads=[1, 1, 1, 1],
    )
    for k in range(2):
        y = b.node(
            "Relu",
            [bn(b.conv(x, f"layer{k}.conv1", 16, 3, 1, bias=False), f"layer{k}.bn1")],
            f"layer{k}.relu1",
            b.shapes[x],
        )
        y = bn(b.conv(y, f"layer{k}.conv2", 16, 3, 1, bias=False), f"layer{k}.bn2")
        x = b.node(
            "Relu",
            [b.node("Add", [y, x], f"layer{k}.add", b.shapes[x])],
            f"layer{k}.relu2",
            b.shapes[x],
        )
    x = b.node("GlobalAveragePool", [x], "avgpool", [1, 16, 1, 1])
    x = b.node("Flatten", [x], "flatten", [1, 16], axis=1)
    wt = b.const("fc.weight", (RNG.standard_normal((classes, 16)) * 0.1).astype(np.float32))
    x = b.node(
        "Gemm",
        [x, wt, b.const("fc.bias", np.zeros(classes, np.float32))],
        "fc",
        [1, classes],
        transB=1,
    )
    if softmax:
        x = b.node("Softmax", [x], "softmax", [1, classes], axis=1)
    batch = "N" if dynamic_batch else 1
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])
    return b.model([inp], [x])


def normalised_classifier(size: int = 32) -> onnx.ModelProto:
    """uint8 NHWC input → Cast → Transpose → Sub(mean) → Div(std) → a small conv classifier."""
    b = Builder()
    x = b.node("Cast", ["image"], "cast", [1, size, size, 3], to=TensorProto.FLOAT)
    x = b.node("Transpose", [x], "to_nchw", [1, 3, size, size], perm=[0, 3, 1, 2])
    mean = b.const("mean", np.array([123.675, 116.28, 103.53], np.float32).reshape(1, 3, 1, 1))
    std = b.const("std", np.array([58.395, 57.12, 57.375], np.float32).reshape(1, 3, 1, 1))
    x = b.node("Sub", [x, mean], "sub_mean", [1, 3, size, size])
    x = b.node("Div", [x, std], "div_std", [1, 3, size, size])
    x = b.node("Relu", [b.conv(x, "conv1", 8, 3, 2)], "relu1", [1, 8, size // 2, size // 2])
    x = b.node("Relu", [b.conv(x, "conv2", 8, 3, 2)], "relu2", [1, 8, size // 4, size // 4])
    x = b.node("GlobalAveragePool", [x], "gap", [1, 8, 1, 1])
    x = b.node("Flatten", [x], "flatten", [1, 8], axis=1)
    x = b.node(
        "Gemm",
        [x, b.const("fc.w", np.ones((5, 8), np.float32)), b.const("fc.b", np.zeros(5, np.float32))],
        "fc",
        [1, 5],
        transB=1,
    )
    inp = helper.make_tensor_value_info("image", TensorProto.UINT8, [1, size, size, 3])
    return b.model([inp], [x])


def middle_unsupported(size: int = 32, op: str = "Erf") -> onnx.ModelProto:
    """Two conv stacks with an op the tables do not know (``Erf``) between them, plus a residual
    Add that reads from before the unsupported op (a cycle trap for a naive partitioner)."""
    b = Builder()
    b.shapes["x"] = [1, 3, size, size]
    a = b.node("Relu", [b.conv("x", "front.conv1", 16, 3, 1)], "front.relu1", [1, 16, size, size])
    a = b.node("Relu", [b.conv(a, "front.conv2", 16, 3, 1)], "front.relu2", [1, 16, size, size])
    u = b.node(op, [a], "middle.unsupported", [1, 16, size, size])
    c = b.node("Relu", [b.conv(u, "back.conv1", 16, 3, 1)], "back.relu1", [1, 16, size, size])
    c = b.conv(c, "back.conv2", 16, 3, 1)
    s = b.node("Add", [c, a], "back.add", [1, 16, size, size])
    s = b.node("Relu", [b.conv(s, "back.conv3", 16, 3, 1)], "back.relu3", [1, 16, size, size])
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])
    return b.model([inp], [s])
