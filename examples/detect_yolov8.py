"""YOLOv8 detection with hailo-ort: the network on the device, the post-processing in numpy.

    python examples/detect_yolov8.py                  # the built-in yolov8n example
    python examples/detect_yolov8.py --model yolov8n.onnx --calib calib_images/ --conf 0.25

As Hailo deployments of YOLOv8 do, the model is cut after its six head convolutions (per
scale: 64 box-distribution channels ``cv2.*`` and one channel per class ``cv3.*``): that part
is compiled for the device (the Hailo DFC when installed, else hailo-ort's quantization
emulation) and run through ``hailo_ort.InferenceSession``. The rest — DFL decode (softmax over
16 bins, expectation), box decode (anchor ± distance, times stride), class sigmoid and NMS — is
plain numpy below. The same numpy post-processing on the float head outputs is checked
against the model's own ONNX tail, and the device detections are compared with float's.

The built-in example has seeded random weights: its "detections" are not objects, but they
are the same computation as a trained model's, which makes the float comparison meaningful.
No downloads: the input is a synthetic image.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import onnxruntime

import hailo_ort
from hailo_ort.errors import HailoOrtError
from hailo_ort.graph import extract_subgraph, load_model
from hailo_ort.zoo import synthetic_images

REG_MAX = 16


# ---- post-processing (numpy) ----------------------------------------------------------------


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def decode(
    heads: list[tuple[np.ndarray, np.ndarray]], image_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(boxes [N, 4] as cx, cy, w, h in pixels; class scores [N, C]) from the head outputs.

    ``heads``: per scale (largest map first), the box-distribution map [1, 4*16, H, W] and the
    class-logit map [1, C, H, W]. The stride of a scale is the image height over H.
    """
    boxes, scores = [], []
    for box_map, cls_map in heads:
        _, _, h, w = box_map.shape
        stride = image_size[0] / h
        dist = box_map.reshape(4, REG_MAX, h * w)  # per side: a distribution over 16 bins
        dist = (_softmax(dist, axis=1) * np.arange(REG_MAX)[None, :, None]).sum(axis=1)
        ys, xs = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
        ax, ay = xs.reshape(-1), ys.reshape(-1)
        x1, y1 = ax - dist[0], ay - dist[1]
        x2, y2 = ax + dist[2], ay + dist[3]
        boxes.append(np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=1) * stride)
        scores.append(1.0 / (1.0 + np.exp(-cls_map.reshape(cls_map.shape[1], h * w).T)))
    return np.concatenate(boxes).astype(np.float32), np.concatenate(scores).astype(np.float32)


def iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each of ``others`` [N, 4]."""
    lt = np.maximum(box[:2], others[:, :2])
    rb = np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(others[:, 2:] - others[:, :2], axis=1)
    return inter / np.maximum(area + areas - inter, 1e-9)


def nms(
    boxes: np.ndarray, scores: np.ndarray, conf: float, iou_threshold: float, max_det: int
) -> list[tuple[int, float, np.ndarray]]:
    """Class-aware NMS: [(class, score, xyxy box)], best first."""
    cls = scores.argmax(axis=1)
    best = scores[np.arange(len(scores)), cls]
    keep = np.flatnonzero(best >= conf)
    xyxy = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], 1)
    order = keep[np.argsort(-best[keep], kind="stable")]
    picked: list[tuple[int, float, np.ndarray]] = []
    while len(order) and len(picked) < max_det:
        i, order = order[0], order[1:]
        picked.append((int(cls[i]), float(best[i]), xyxy[i]))
        same = cls[order] == cls[i]
        overlap = iou(xyxy[i], xyxy[order]) > iou_threshold
        order = order[~(same & overlap)]
    return picked


def match(
    found: list[tuple[int, float, np.ndarray]], reference: list[tuple[int, float, np.ndarray]]
) -> list[float]:
    """For each reference detection, the best IoU with a found one of the same class (0: none)."""
    out = []
    for c, _, box in reference:
        same = [b for k, _, b in found if k == c]
        out.append(float(iou(box, np.stack(same)).max()) if same else 0.0)
    return out


# ---- the device part ------------------------------------------------------------------------


def head_outputs(part_outputs: list[str], shapes: dict[str, list[int]], classes: int):
    """The six head tensors, grouped per scale (box map, class map), largest map first."""
    box = [t for t in part_outputs if shapes[t][1] == 4 * REG_MAX]
    cls = [t for t in part_outputs if shapes[t][1] == classes]
    if len(part_outputs) != 6 or len(box) != 3 or len(cls) != 3:
        raise HailoOrtError(
            "expected the device part to end in six YOLOv8 head convs (3 x 64 box channels, "
            f"3 x {classes} class channels); it ends in "
            + ", ".join(f"{t} {shapes[t]}" for t in part_outputs)
        )
    box.sort(key=lambda t: -shapes[t][2])
    cls.sort(key=lambda t: -shapes[t][2])
    return list(zip(box, cls))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="example:yolov8n", help="ONNX path or example:NAME")
    parser.add_argument("--arch", default="hailo8l")
    parser.add_argument("--calib", help="calibration images: a folder or an .npy [N,C,H,W]")
    parser.add_argument("--calib-count", type=int, default=64)
    parser.add_argument("--conf", type=float, default=0.5, help="score threshold")
    parser.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold")
    parser.add_argument("--max-det", type=int, default=10)
    parser.add_argument("--backend", choices=["auto", "dfc", "emulate"], default="auto")
    parser.add_argument("--seed", type=int, default=3, help="seed of the synthetic test image")
    args = parser.parse_args(argv)
    warnings.showwarning = lambda message, *_args, **_kw: print(f"warning: {message}")
    try:
        return run(args)
    except HailoOrtError as exc:
        print(f"detect_yolov8: error: {exc}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    float_model = load_model(args.model)
    (image_input,) = [vi.name for vi in float_model.graph.input]
    dims = float_model.graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.dim_value > 0 else 1 for d in dims]
    classes = [d.dim_value for d in float_model.graph.output[0].type.tensor_type.shape.dim][1] - 4

    # 1. the device part: what the partitioner puts on the device, cut out as a model
    inspected = hailo_ort.inspect(float_model, args.arch)
    if len(inspected.partitions) != 1:
        raise HailoOrtError(f"expected one device partition, found {len(inspected.partitions)}")
    part = inspected.partitions[0]
    shapes = {t.name: list(t.shape) for t in [*part.inputs, *part.outputs]}
    heads = head_outputs([t.name for t in part.outputs], shapes, classes)
    prepared = inspected.prepared.model
    backbone = extract_subgraph(
        prepared, part.nodes, [t.name for t in part.inputs], [t.name for t in part.outputs]
    )
    print(
        f"device part: {len(part.nodes)} nodes, {image_input} {shape} -> "
        + ", ".join(f"{t} {shapes[t]}" for pair in heads for t in pair)
    )
    print(f"cpu (numpy): DFL decode, box decode, class sigmoid, NMS ({classes} classes)")

    # 2. compile it (the DFC when present, else emulation) and open it
    if args.calib:
        calibration = args.calib
    else:
        calibration = {image_input: synthetic_images(args.calib_count, shape[1:], seed=1)}
    t0 = time.perf_counter()
    result = hailo_ort.compile(
        backbone, args.arch, calibration=calibration, backend=args.backend, progress=False
    )
    print(
        f"compiled for {result.arch} with the {result.backend} backend in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    if result.backend == "emulate":
        print("note: emulation predicts the 8-bit quantization; it is not the Hailo compiler")
    device = "emulator" if result.backend == "emulate" else "auto"
    sess = hailo_ort.InferenceSession(
        result.model,
        providers=[("HailoExecutionProvider", {"device": device}), "CPUExecutionProvider"],
    )
    print(f"providers: {', '.join(sess.get_providers())}")

    # 3. run on a synthetic image; post-process in numpy
    image = synthetic_images(1, shape[1:], seed=args.seed)
    feed = {image_input: image}
    names = [t for pair in heads for t in pair]
    size = (shape[2], shape[3])
    t0 = time.perf_counter()
    device_out = dict(zip(names, sess.run(names, feed)))
    boxes, scores = decode([(device_out[b], device_out[c]) for b, c in heads], size)
    detections = nms(boxes, scores, args.conf, args.iou, args.max_det)
    ms = 1000 * (time.perf_counter() - t0)

    # float reference: the same post-processing on the float head outputs ...
    float_heads = onnxruntime.InferenceSession(
        backbone.SerializeToString(), providers=["CPUExecutionProvider"]
    ).run(names, feed)
    float_out = dict(zip(names, float_heads))
    f_boxes, f_scores = decode([(float_out[b], float_out[c]) for b, c in heads], size)
    reference = nms(f_boxes, f_scores, args.conf, args.iou, args.max_det)
    # ... checked against the model's own ONNX tail (output0 = [1, 4 + classes, anchors])
    full = onnxruntime.InferenceSession(
        prepared.SerializeToString(), providers=["CPUExecutionProvider"]
    ).run(None, feed)[0][0]
    tail_error = max(
        float(np.abs(full[:4].T - f_boxes).max()), float(np.abs(full[4:].T - f_scores).max())
    )
    print(f"numpy post-processing vs the model's ONNX tail (float): max abs diff {tail_error:.2e}")

    print(f"detections (hailo-ort, {ms:.1f} ms incl. post-processing), score >= {args.conf}:")
    for c, score, (x1, y1, x2, y2) in detections:
        print(
            f"  class {c:3d}  score {score:.3f}  box [{x1:6.1f}, {y1:6.1f}, {x2:6.1f}, {y2:6.1f}]"
        )
    ious = match(detections, reference)
    matched = sum(v >= 0.5 for v in ious)
    mean_iou = float(np.mean(ious)) if ious else float("nan")
    score_err = float(np.abs(scores - f_scores).max())
    print(
        f"vs float: {matched}/{len(reference)} float detections matched (same class, IoU >= 0.5),"
        f" mean IoU {mean_iou:.3f}; {len(detections)} found; max class-score error {score_err:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
