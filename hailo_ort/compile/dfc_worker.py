"""DFC worker: compiles one partition with the Hailo Dataflow Compiler (``hailo_sdk_client``).

It runs in the DFC's own Python environment (x86-64 Linux, Python 3.8-3.12, pinned
TensorFlow), started by :mod:`hailo_ort.compile.dfc` as ``python dfc_worker.py JOB.json``.
It must stay importable on Python 3.8 with only the standard library, numpy and the DFC: it
does not import hailo_ort.

Job (JSON): ``onnx_path``, ``net_name``, ``start_node_names``, ``end_node_names``,
``net_input_shapes`` ({tensor: [n, c, h, w]}), ``hw_arch``, ``model_script`` (text),
``calib`` (path of an NHWC float32 .npy, or {input layer name: path}), ``output_hef``,
optional ``har_path`` and ``accept_recommendation`` (default true).

Progress and the result are JSON lines on stdout (anything else printed there, e.g. by the
DFC, is moved to stderr): ``{"event": "stage", "stage": ...,
"status": "start"|"done", "seconds": ...}``, ``{"event": "recommendation", ...}``,
``{"event": "done", ...}`` or ``{"event": "error", "kind": ..., ...}``; the DFC's own output
and tracebacks go to stderr (the driver keeps them in a log file).
Exit codes: 0 done, 2 DFC error, 3 the DFC is not importable, 4 bad job.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

STAGES = ("load", "parse", "script", "optimize", "compile")


_EVENTS = None  # the JSON event channel: the original stdout


def claim_stdout():
    """Keep the original stdout for events; send everything else printed there to stderr.

    The DFC and TensorFlow print progress to stdout; they must not garble the event lines.
    """
    global _EVENTS
    sys.stdout.flush()
    _EVENTS = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)


def emit(event, **fields):
    """Write one JSON progress line to the event channel."""
    record = {"event": event}
    record.update(fields)
    out = _EVENTS if _EVENTS is not None else sys.stdout
    out.write(json.dumps(record) + "\n")
    out.flush()


def classify(exc):
    """The kind of a DFC exception: recommendation, misspell, unsupported, allocation, other."""
    names = [cls.__name__ for cls in type(exc).__mro__]
    text = str(exc).lower()
    if "ParsingWithRecommendationException" in names:
        return "recommendation"
    if "MisspellNodeError" in names:
        return "misspell"
    if "UnsupportedModelError" in names or any(n.startswith("Unsupported") for n in names):
        return "unsupported"
    if any("Alloc" in n for n in names) or "allocat" in text or "resources" in text:
        return "allocation"
    return "other"


def load_calib(spec):
    import numpy as np

    if isinstance(spec, dict):
        return dict((name, np.load(path)) for name, path in spec.items())
    return np.load(spec)


class Stage:
    """Context manager that reports a stage's start and end."""

    current = "load"
    failed = False

    def __init__(self, name):
        self.name = name
        self.t0 = 0.0

    def __enter__(self):
        Stage.current = self.name
        self.t0 = time.time()
        emit("stage", stage=self.name, status="start")
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None and not Stage.failed:
            emit("stage", stage=self.name, status="done", seconds=round(time.time() - self.t0, 3))
        return False


def translate(runner, job, end_nodes):
    return runner.translate_onnx_model(
        job["onnx_path"],
        job["net_name"],
        start_node_names=list(job["start_node_names"]),
        end_node_names=list(end_nodes),
        net_input_shapes=dict(job["net_input_shapes"]),
    )


def run(job):
    """Run the DFC stages of ``job``; returns the exit code."""
    with Stage("load"):
        try:
            import hailo_sdk_client
            from hailo_sdk_client import ClientRunner
        except ImportError as exc:
            Stage.failed = True
            emit(
                "error", stage="load", kind="import", exception=type(exc).__name__, message=str(exc)
            )
            return 3
        version = getattr(hailo_sdk_client, "__version__", "unknown")
        emit("info", dfc_version=str(version), python=sys.version.split()[0])
        runner = ClientRunner(hw_arch=job["hw_arch"])

    end_nodes = list(job["end_node_names"])
    with Stage("parse"):
        try:
            translate(runner, job, end_nodes)
        except Exception as exc:
            recommended = list(getattr(exc, "recommended_end_node_names", None) or [])
            if (
                classify(exc) != "recommendation"
                or not job.get("accept_recommendation", True)
                or not recommended
                or recommended == end_nodes
            ):
                raise
            emit(
                "recommendation",
                original=end_nodes,
                recommended=recommended,
                message=str(exc),
            )
            end_nodes = recommended
            translate(runner, job, end_nodes)

    with Stage("script"):
        if job.get("model_script"):
            runner.load_model_script(job["model_script"])

    with Stage("optimize"):
        runner.optimize(load_calib(job["calib"]))

    with Stage("compile"):
        hef = runner.compile()
        if not isinstance(hef, (bytes, bytearray)):
            raise TypeError(f"ClientRunner.compile() returned {type(hef).__name__}, not bytes")
        tmp = job["output_hef"] + ".tmp"
        with open(tmp, "wb") as f:
            f.write(bytes(hef))
        os.replace(tmp, job["output_hef"])
        if job.get("har_path"):
            runner.save_har(job["har_path"])

    emit("done", hef=job["output_hef"], hef_size=len(hef), end_node_names=end_nodes)
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    claim_stdout()
    if len(argv) != 1:
        sys.stderr.write("usage: dfc_worker.py JOB.json\n")
        return 4
    try:
        with open(argv[0]) as f:
            job = json.load(f)
        missing = [
            k
            for k in ("onnx_path", "net_name", "start_node_names", "end_node_names", "hw_arch")
            if k not in job
        ]
        if missing or "calib" not in job or "output_hef" not in job:
            raise ValueError("job lacks {}".format(", ".join(missing or ["calib/output_hef"])))
    except (OSError, ValueError) as exc:
        emit("error", stage="job", kind="job", exception=type(exc).__name__, message=str(exc))
        return 4
    try:
        return run(job)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        emit(
            "error",
            stage=Stage.current,
            kind=classify(exc),
            exception=type(exc).__name__,
            message=str(exc),
            recommended_end_node_names=list(getattr(exc, "recommended_end_node_names", None) or []),
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
