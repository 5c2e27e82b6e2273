"""Image classification with hailo-ort: compile a classifier, run it, compare top-5 with float.

    python examples/classify.py                        # the built-in resnet18 example
    python examples/classify.py --model example:mobilenet_v2
    python examples/classify.py --model my_net.onnx --calib calib_images/ --images test_images/

The model is compiled for ``--arch`` with the Hailo Dataflow Compiler when it is installed,
otherwise with hailo-ort's quantization emulation (which predicts the 8-bit accuracy; it is not
the Hailo compiler). It then runs through ``hailo_ort.InferenceSession`` — on a Hailo device
when the model carries HEFs and one is present, on the emulator for emulated models — and each
image's top-5 classes are compared with those of the float model on onnxruntime.

Without ``--calib`` / ``--images`` the script makes synthetic image-like inputs (no downloads);
the built-in examples take 0..1 RGB images, NCHW. A folder of images is resized to the model's
input and scaled to 0..1 (``--pixels`` for 0..255).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime

import hailo_ort
from hailo_ort.compile.calibration import from_images
from hailo_ort.errors import HailoOrtError
from hailo_ort.graph import load_model, parse_input_shapes
from hailo_ort.zoo import synthetic_images


def load_images(source: str | None, shape: list[int], count: int, seed: int, scale: float):
    """[N, C, H, W] float32: from a folder of images or an .npy file, else synthetic."""
    if source is None:
        return synthetic_images(count, shape[1:], seed=seed)
    path = Path(source)
    if path.suffix == ".npy":
        return np.load(path).astype(np.float32)[:count]
    feeds = from_images(path, {"x": (shape, "float32")}, scale=scale, limit=count)
    return np.concatenate([f["x"] for f in feeds])


def top_k(probs: np.ndarray, k: int = 5) -> list[int]:
    return [int(i) for i in np.argsort(-probs)[:k]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="example:resnet18", help="ONNX path or example:NAME")
    parser.add_argument("--arch", default="hailo8l")
    parser.add_argument("--calib", help="calibration images: a folder or an .npy [N,C,H,W]")
    parser.add_argument("--images", help="images to classify: a folder or an .npy [N,C,H,W]")
    parser.add_argument("--count", type=int, default=8, help="images to classify (default 8)")
    parser.add_argument("--calib-count", type=int, default=64, help="calibration images")
    parser.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...")
    parser.add_argument("--pixels", action="store_true", help="the model takes 0..255 pixels")
    parser.add_argument("--backend", choices=["auto", "dfc", "emulate"], default="auto")
    args = parser.parse_args(argv)

    warnings.showwarning = lambda message, *_args, **_kw: print(f"warning: {message}")
    try:
        return run(args)
    except HailoOrtError as exc:
        print(f"classify: error: {exc}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    float_model = load_model(args.model)
    shapes = parse_input_shapes(args.input_shape) if args.input_shape else None
    if len(float_model.graph.input) != 1:
        raise SystemExit("classify: the model must have one image input")
    name = float_model.graph.input[0].name
    if shapes and name in shapes:
        shape = shapes[name]
    else:
        dims = float_model.graph.input[0].type.tensor_type.shape.dim
        shape = [d.dim_value if d.dim_value > 0 else 1 for d in dims]
    scale = 1.0 if args.pixels else 1.0 / 255.0
    pixels = 255.0 if args.pixels else 1.0

    # 1. compile: the DFC when present, else emulation
    calib = load_images(args.calib, shape, args.calib_count, seed=1, scale=scale) * np.float32(
        pixels if args.calib is None else 1.0
    )
    t0 = time.perf_counter()
    result = hailo_ort.compile(
        float_model,
        args.arch,
        calibration={name: calib},
        input_shapes=shapes,
        backend=args.backend,
        progress=False,
    )
    print(
        f"compiled {args.model} for {result.arch} with the {result.backend} backend "
        f"in {time.perf_counter() - t0:.1f} s ({len(result.partitions)} device partition(s))"
    )
    if result.backend == "emulate":
        print("note: emulation predicts the 8-bit quantization; it is not the Hailo compiler")

    # 2. run: emulated models on the emulator, HEFs on a Hailo device (CPU if none)
    device = "emulator" if result.backend == "emulate" else "auto"
    sess = hailo_ort.InferenceSession(
        result.model,
        providers=[("HailoExecutionProvider", {"device": device}), "CPUExecutionProvider"],
    )
    print(f"providers: {', '.join(sess.get_providers())}")
    ref = onnxruntime.InferenceSession(
        sess_model_bytes(float_model, shapes), providers=["CPUExecutionProvider"]
    )

    images = load_images(args.images, shape, args.count, seed=2, scale=scale) * np.float32(
        pixels if args.images is None else 1.0
    )
    agree_top1, overlap = 0, 0
    for i, image in enumerate(images):
        feed = {name: image[None]}
        got = sess.run(None, feed)[0].reshape(-1)
        want = ref.run(None, feed)[0].reshape(-1)
        g5, w5 = top_k(got), top_k(want)
        agree_top1 += g5[0] == w5[0]
        overlap += len(set(g5) & set(w5))
        print(
            f"image {i}: hailo-ort top-5 {g5} ({got[g5[0]]:.3f}) | float top-5 {w5} "
            f"({want[w5[0]]:.3f})"
        )
    n = len(images)
    print(f"top-1 agreement: {agree_top1}/{n}; top-5 overlap: {overlap / (5 * n):.0%}")
    return 0


def sess_model_bytes(model, shapes) -> bytes:
    """The float model for onnxruntime (with the given input shapes fixed, if any)."""
    if not shapes:
        return model.SerializeToString()
    from hailo_ort.graph import prepare

    return prepare(model, shapes).model.SerializeToString()


if __name__ == "__main__":
    sys.exit(main())
