"""Fake ``hailo_sdk_client`` (tests only): the DFC call surface, driven by FAKE_DFC_CONFIG."""

import json
import os
import sys
import time

import numpy as np

from .model_translator.exceptions import (
    MisspellNodeError,
    ParsingWithRecommendationException,
    UnsupportedModelError,
)

__version__ = "3.99.0+fake"

_ARCHS = ("hailo8", "hailo8r", "hailo8l", "hailo15h", "hailo15m", "hailo15l", "hailo10h")


class BackendAllocatorException(Exception):
    pass


class InferenceContext:
    SDK_NATIVE = "native"
    SDK_FP_OPTIMIZED = "fp_optimized"
    SDK_QUANTIZED = "quantized"
    SDK_BIT_EXACT = "bit_exact"
    SDK_HAILO_HW = "hw"


def _config():
    path = os.environ.get("FAKE_DFC_CONFIG")
    if not path:
        return {}
    with open(path) as f:
        return json.load(f)


def _node_names(onnx_path):
    import onnx

    return {n.name for n in onnx.load(onnx_path).graph.node}


class ClientRunner:
    def __init__(self, hw_arch=None, har=None):
        if hw_arch not in _ARCHS:
            raise ValueError(f"Unsupported hw_arch {hw_arch!r}")
        self.hw_arch = hw_arch
        self.cfg = _config()
        self.state = "init"
        self.input_shapes = {}
        self.log = {"hw_arch": hw_arch, "translate": [], "scripts": [], "calib": None}
        self._save()

    def _save(self):
        if self.cfg.get("record"):
            with open(self.cfg["record"], "w") as f:
                json.dump(self.log, f)

    def translate_onnx_model(
        self, model, net_name, start_node_names=None, end_node_names=None, net_input_shapes=None
    ):
        self.log["translate"].append(
            {
                "model": model,
                "net_name": net_name,
                "start": list(start_node_names or []),
                "end": list(end_node_names or []),
                "shapes": net_input_shapes,
            }
        )
        self._save()
        names = _node_names(model)
        for node in list(start_node_names or []) + list(end_node_names or []):
            if node not in names:
                raise MisspellNodeError(f"Unable to find node {node} in the model")
        fail = self.cfg.get("fail")
        if fail == "recommend" and list(end_node_names) != self.cfg["recommend"]:
            raise ParsingWithRecommendationException(
                "Parsing failed at end nodes; try the recommended end nodes",
                recommended_end_node_names=self.cfg["recommend"],
            )
        if fail == "recommend_always":
            raise ParsingWithRecommendationException(
                "Parsing failed", recommended_end_node_names=self.cfg["recommend"]
            )
        if fail == "misspell_always":
            raise MisspellNodeError("Unable to find node {}".format(self.cfg.get("node", "?")))
        if fail == "unsupported":
            raise UnsupportedModelError(
                "Unsupported layer in {}: {} (op GridSample)".format(net_name, self.cfg["node"])
            )
        self.input_shapes = dict(net_input_shapes or {})
        self.state = "parsed"
        return "hn", "params"

    def load_model_script(self, text):
        if self.state != "parsed":
            raise RuntimeError("load_model_script before translate")
        self.log["scripts"].append(text)
        self._save()

    def optimize(self, calib_data):
        if self.state != "parsed":
            raise RuntimeError("optimize before translate")
        arrays = calib_data if isinstance(calib_data, dict) else {"input_layer1": calib_data}
        shapes = list(self.input_shapes.values())
        for i, arr in enumerate(arrays.values()):
            arr = np.asarray(arr)
            if i < len(shapes) and len(shapes[i]) == 4:
                _, c, h, w = shapes[i]
                if arr.ndim != 4 or tuple(arr.shape[1:]) != (h, w, c):
                    raise ValueError(
                        f"Calibration data shape {arr.shape} does not match the input "
                        f"(N, {h}, {w}, {c})"
                    )
        # like the real optimizer: progress on stdout, without a newline at the end
        sys.stdout.write("[info] Starting Model Optimization\nCalibration: 100%|#####|")
        sys.stdout.flush()
        self.log["calib"] = {k: list(np.asarray(v).shape) for k, v in arrays.items()}
        self._save()
        if self.cfg.get("fail") == "sleep":
            time.sleep(float(self.cfg.get("seconds", 30)))
        self.state = "optimized"

    def compile(self):
        if self.state != "optimized":
            raise RuntimeError("The model must be quantized (optimize) before compile")
        fail = self.cfg.get("fail")
        if fail == "allocation":
            raise BackendAllocatorException(
                "Compilation failed: No successful assignments: {}: Agent infeasible".format(
                    self.cfg.get("node", "conv1")
                )
            )
        if fail == "crash":
            sys.stderr.write("Fatal Python error: Aborted\n")
            sys.stderr.flush()
            os._exit(134)
        with open(self.cfg["hef"], "rb") as f:
            data = f.read()
        self.state = "compiled"
        self.log["compiled"] = True
        self._save()
        return data

    def save_har(self, path):
        with open(path, "w") as f:
            json.dump(self.log, f)
