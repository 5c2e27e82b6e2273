"""The emulator device: runs the emulation model of an emulated partition with onnxruntime.

It takes and returns device-side tensors (quantized, device layout, keyed by vstream name), like
the HailoRT device, so the session's host path is the same for both. Batches run one at a time
on a worker thread per loaded partition (the device's queue), with completion callbacks, and an
optional modelled fixed latency per batch (``latency_ms``) for pipelining benchmarks.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import DeviceError
from ...hailoop.types import CompiledPartition
from .base import Device, DeviceOutputs, LoadedPartition

Callback = Callable[[DeviceOutputs | None, BaseException | None], None]

_STOP = object()


def _partition_name(compiled: CompiledPartition) -> str:
    if compiled.inputs and "/" in compiled.inputs[0].vstream:
        return compiled.inputs[0].vstream.split("/", 1)[0]
    return f"partition {compiled.partition.index}"


class EmulatedPartition(LoadedPartition):
    """An emulated partition loaded on the emulator: one onnxruntime session and one worker."""

    def __init__(self, compiled: CompiledPartition, batch_size: int, latency_ms: float) -> None:
        import onnxruntime

        name = _partition_name(compiled)
        if compiled.emulation is None:
            raise DeviceError(
                f"{name} carries only a HEF and no emulation payload: the emulator cannot run it "
                "(run it on a Hailo device, or compile with the emulate backend)"
            )
        if batch_size < 1:
            raise DeviceError(f"batch_size must be >= 1, got {batch_size}")
        self.inputs = list(compiled.inputs)
        self.outputs = list(compiled.outputs)
        self.batch_size = int(batch_size)
        self.name = name
        self._latency_s = float(latency_ms) / 1000.0
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(
                compiled.emulation, sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise DeviceError(f"{name}: the emulation model does not load: {exc}") from exc
        model_inputs = {i.name: i for i in self._session.get_inputs()}
        model_outputs = {o.name for o in self._session.get_outputs()}
        want_in = {s.vstream for s in self.inputs}
        want_out = {s.vstream for s in self.outputs}
        if set(model_inputs) != want_in or not want_out <= model_outputs:
            raise DeviceError(
                f"{name}: the emulation model's inputs {sorted(model_inputs)} / outputs "
                f"{sorted(model_outputs)} do not match the streams {sorted(want_in)} / "
                f"{sorted(want_out)}"
            )
        # A static leading dimension of 1 means the model runs one frame at a time.
        self._per_frame = (
            all((i.shape and i.shape[0] == 1) for i in self._session.get_inputs())
            and self.batch_size > 1
        )
        self._output_names = [s.vstream for s in self.outputs]
        self._dtypes = {s.vstream: np.dtype(s.device_dtype) for s in self.inputs}
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self.batches_run = 0  # device batches run so far (statistics)

    # -- the device queue -------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        if self._worker is None:
            with self._lock:
                if self._worker is None:
                    self._worker = threading.Thread(
                        target=self._work, name=f"hailo-ort-emulator-{self.name}", daemon=True
                    )
                    self._worker.start()

    def _work(self) -> None:
        pending: list[Any] = []
        while True:
            job = pending.pop(0) if pending else self._queue.get()
            if job is _STOP:
                return
            # Like the device, take up to batch_size frames from the queue into one batch:
            # the modelled latency is paid once per batch.
            batch = [job]
            frames = self._frames(job[0])
            while frames < self.batch_size:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP or frames + self._frames(nxt[0]) > self.batch_size:
                    pending.append(nxt)
                    break
                batch.append(nxt)
                frames += self._frames(nxt[0])
            now = time.monotonic()
            live = []
            for inputs, callback, deadline in batch:
                if now > deadline:
                    callback(
                        None, DeviceError(f"{self.name}: timed out waiting in the device queue")
                    )
                else:
                    live.append((inputs, callback))
            if live:
                self.batches_run += 1
                if self._latency_s:
                    time.sleep(self._latency_s)
            for inputs, callback in live:
                try:
                    out = self._run(inputs)
                except BaseException as exc:  # handed to the callback, never lost
                    callback(None, exc if isinstance(exc, DeviceError) else DeviceError(str(exc)))
                    continue
                callback(out, None)

    @staticmethod
    def _frames(inputs: dict[str, np.ndarray]) -> int:
        first = next(iter(inputs.values()), None)
        return int(first.shape[0]) if first is not None and first.ndim else 1

    def _run(self, inputs: dict[str, np.ndarray]) -> DeviceOutputs:
        frames = {int(np.shape(v)[0]) if np.ndim(v) else 1 for v in inputs.values()}
        if len(frames) != 1:
            raise DeviceError(f"{self.name}: inputs disagree on the batch size {sorted(frames)}")
        n = frames.pop()
        if n > self.batch_size:
            raise DeviceError(f"{self.name}: {n} frames exceed the batch size {self.batch_size}")
        if not self._per_frame or n == 1:
            result = self._session.run(self._output_names, inputs)
            return dict(zip(self._output_names, result))
        per_frame = [
            self._session.run(self._output_names, {k: v[i : i + 1] for k, v in inputs.items()})
            for i in range(n)
        ]
        return {
            name: np.concatenate([r[j] for r in per_frame], axis=0)
            for j, name in enumerate(self._output_names)
        }

    def _check(self, inputs: dict[str, np.ndarray]) -> None:
        if self._closed:
            raise DeviceError(f"{self.name}: the partition was closed")
        if set(inputs) != set(self._dtypes):
            raise DeviceError(
                f"{self.name}: expected inputs {sorted(self._dtypes)}, got {sorted(inputs)}"
            )
        for name, value in inputs.items():
            if value.dtype != self._dtypes[name]:
                raise DeviceError(
                    f"{self.name}: input {name} is {value.dtype}, the device takes "
                    f"{self._dtypes[name]}"
                )

    # -- LoadedPartition ----------------------------------------------------------------------
    def infer_async(
        self, inputs: dict[str, np.ndarray], callback: Callback, timeout_ms: int
    ) -> None:
        """Queue one batch; ``callback(outputs, error)`` runs on the worker thread."""
        self._check(inputs)
        self._ensure_worker()
        self._queue.put((inputs, callback, time.monotonic() + timeout_ms / 1000.0))

    def infer(self, inputs: dict[str, np.ndarray], timeout_ms: int) -> DeviceOutputs:
        """Run one batch and wait for it; DeviceError on failure or after ``timeout_ms``."""
        done = threading.Event()
        box: list[Any] = [None, None]

        def finished(out: DeviceOutputs | None, err: BaseException | None) -> None:
            box[0], box[1] = out, err
            done.set()

        self.infer_async(inputs, finished, timeout_ms)
        if not done.wait(timeout_ms / 1000.0):
            raise DeviceError(f"{self.name}: no result within {timeout_ms} ms")
        if box[1] is not None:
            raise box[1]
        return box[0]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:
            self._queue.put(_STOP)
            self._worker.join(timeout=5.0)


class EmulatorDevice(Device):
    """A software stand-in for a Hailo device that runs emulated partitions (any arch)."""

    kind = "emulator"

    def __init__(self, arch: str = "HAILO8L", latency_ms: float = 0.0) -> None:
        self.arch = arch.upper()
        self.latency_ms = float(latency_ms)
        self._loaded: list[EmulatedPartition] = []

    def load(self, compiled: CompiledPartition, batch_size: int = 1) -> EmulatedPartition:
        part = EmulatedPartition(compiled, batch_size, self.latency_ms)
        self._loaded.append(part)
        return part

    def close(self) -> None:
        for part in self._loaded:
            part.close()
        self._loaded.clear()
