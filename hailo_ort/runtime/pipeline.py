"""Pipelined execution of a session plan: requests overlap across CPU segments and the device.

Each plan step becomes a stage with its own worker thread(s) fed by a FIFO queue:

* a CPU segment (onnxruntime session) is a worker that runs it and hands the request on;
* a HailoOp step is two workers around the device queue: the *submit* worker converts inputs
  (``transforms.to_device``) and submits them with ``infer_async`` without waiting, gathering
  queued requests into one device batch of up to ``batch_size`` frames; the *complete* worker
  waits for each submission in order (bounded by the device timeout), converts outputs back
  (``transforms.from_device``) and, on device failure, applies the session's fallback rule.

So while the device runs request N, the CPU pre-processes N+1 and post-processes N-1. A
failed request carries its exception through the remaining stages untouched and is reported
to its own completion callback; other requests are not affected. :meth:`Pipeline.close`
stops and joins every worker.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import HailoOrtError
from .plan import DeviceRequest, DeviceStep

_log = logging.getLogger("hailo_ort")

_STOP = object()

Done = Callable[[list[Any] | None, BaseException | None], None]


class PipelineClosedError(HailoOrtError):
    """A request was submitted to, or still queued in, a pipeline that is closing."""


class Job:
    """One request moving through the pipeline."""

    __slots__ = ("error", "frames", "on_done", "output_names", "run_options", "values")

    def __init__(
        self,
        values: dict[str, Any],
        output_names: Sequence[str],
        on_done: Done,
        run_options: Any = None,
        error: BaseException | None = None,
    ) -> None:
        self.values = values
        self.output_names = list(output_names)
        self.run_options = run_options
        self.error = error
        self.on_done = on_done
        self.frames = 0


class _Stage:
    """A FIFO queue served by ``workers`` threads running ``handle(job_or_stop)``."""

    def __init__(self, name: str, workers: int) -> None:
        self.name = name
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.workers = workers
        self.threads: list[threading.Thread] = []
        self._alive = workers
        self._lock = threading.Lock()

    def last_out(self) -> bool:
        """Called by a worker that saw the stop mark: whether it is the stage's last one."""
        with self._lock:
            self._alive -= 1
            return self._alive == 0


class Pipeline:
    """Stage threads over ``steps`` (plan steps, run in order on a ``values`` dict).

    ``batch_size`` caps the frames gathered into one device submission. ``cpu_workers`` is the
    number of threads per CPU stage (1 keeps onnxruntime's own threads in charge; a
    pass-through session with no device uses 2).
    """

    def __init__(
        self,
        steps: Sequence[Any],
        constants: dict[str, Any] | None = None,
        batch_size: int = 1,
        cpu_workers: int = 1,
        name: str = "hailo-ort",
    ) -> None:
        self._constants = dict(constants or {})
        self._batch = max(1, int(batch_size))
        self._closing = False
        self._closed = False
        self._close_lock = threading.Lock()
        self._stages: list[_Stage] = []
        plan: list[tuple[_Stage, Callable[[Any, _Stage], None]]] = []
        for step in steps:
            if isinstance(step, DeviceStep):
                inflight = _Stage(f"{step.name}-complete", 1)
                submit = _Stage(f"{step.name}-submit", 1)
                plan.append((submit, self._submit_worker(step, inflight)))
                plan.append((inflight, self._complete_worker(step)))
            else:
                plan.append((_Stage(str(step.name), max(1, cpu_workers)), self._cpu_worker(step)))
        self._stages = [stage for stage, _ in plan]
        self._next: dict[int, _Stage | None] = {}
        for i, stage in enumerate(self._stages):
            self._next[id(stage)] = self._stages[i + 1] if i + 1 < len(self._stages) else None
        for stage, work in plan:
            for k in range(stage.workers):
                thread = threading.Thread(
                    target=self._serve,
                    args=(stage, work),
                    name=f"{name}-{stage.name}-{k}",
                    daemon=True,
                )
                stage.threads.append(thread)
        for stage in self._stages:
            for thread in stage.threads:
                thread.start()

    # ---- plumbing ----------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Queue ``job``; its ``on_done(outputs, error)`` runs on a pipeline thread."""
        with self._close_lock:
            if self._closing:
                raise PipelineClosedError("the session's pipeline is closed")
            if job.error is None:
                values = dict(self._constants)
                values.update(job.values)
                job.values = values
            if self._stages:
                self._stages[0].queue.put(job)
                return
        self._finish(job)

    def _forward(self, stage: _Stage, job: Job) -> None:
        nxt = self._next[id(stage)]
        if nxt is None:
            self._finish(job)
        else:
            nxt.queue.put(job)

    def _stop_next(self, stage: _Stage) -> None:
        nxt = self._next[id(stage)]
        if nxt is not None:
            for _ in range(nxt.workers):
                nxt.queue.put(_STOP)

    def _serve(self, stage: _Stage, work: Callable[[Any, _Stage], None]) -> None:
        while True:
            item = stage.queue.get()
            if item is _STOP:
                work(_STOP, stage)
                if stage.last_out():
                    self._stop_next(stage)
                return
            try:
                work(item, stage)
            except BaseException as exc:  # never lose a request: report it as failed
                _log.debug("pipeline stage %s failed: %s", stage.name, exc)
                jobs = item[0] if isinstance(item, tuple) else [item]
                for job in jobs:
                    if job.error is None:
                        job.error = exc
                    self._finish(job)

    def _finish(self, job: Job) -> None:
        outputs: list[Any] | None = None
        if job.error is None:
            try:
                outputs = [job.values[name] for name in job.output_names]
            except KeyError as exc:
                job.error = HailoOrtError(f"output {exc} was not computed")
        job.values = {}
        try:
            job.on_done(outputs, job.error)
        except Exception:  # a user callback must not kill a stage thread
            _log.exception("hailo_ort: a run_async / stream completion callback raised")

    def _cancelled(self, job: Job) -> bool:
        if self._closing and job.error is None:
            job.error = PipelineClosedError("the session was closed before this request ran")
        return job.error is not None

    # ---- stage workers -------------------------------------------------------------------
    def _cpu_worker(self, step: Any) -> Callable[[Any, _Stage], None]:
        def work(job: Any, stage: _Stage) -> None:
            if job is _STOP:
                return
            if not self._cancelled(job):
                try:
                    step.run(job.values, job.run_options)
                except Exception as exc:
                    job.error = exc
            self._forward(stage, job)

        return work

    def _submit_worker(self, step: DeviceStep, inflight: _Stage) -> Callable[[Any, _Stage], None]:
        carry: list[Any] = []
        # A step without a device runs its float body per request (its shapes may be static).
        limit = self._batch if step.loaded is not None else 1

        def take(stage: _Stage) -> Any:
            return carry.pop() if carry else stage.queue.get()

        def work(first: Any, stage: _Stage) -> None:
            if first is _STOP:
                return
            if self._cancelled(first):
                inflight.queue.put(([first], None))
                return
            try:
                xs = [np.asarray(first.values[name]) for name in step.inputs]
            except KeyError as exc:
                first.error = HailoOrtError(f"{step.name}: input {exc} was not computed")
                inflight.queue.put(([first], None))
                return
            first.frames = _frames(xs)
            jobs, parts = [first], [xs]
            total = first.frames
            # Gather requests already waiting into one device batch (same frame shapes).
            while 0 < total < limit:
                try:
                    nxt = carry.pop() if carry else stage.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP or self._cancelled(nxt):
                    if nxt is _STOP:
                        stage.queue.put(_STOP)  # handled after this batch
                    else:
                        inflight.queue.put(([nxt], None))
                    break
                try:
                    nxs = [np.asarray(nxt.values[name]) for name in step.inputs]
                except KeyError:
                    carry.append(nxt)  # fails on its own, next round
                    break
                nxt.frames = _frames(nxs)
                if nxt.frames <= 0 or total + nxt.frames > limit or not _stackable(xs, nxs):
                    carry.append(nxt)
                    break
                jobs.append(nxt)
                parts.append(nxs)
                total += nxt.frames
            try:
                if len(jobs) == 1:
                    batch = xs
                else:
                    batch = [np.concatenate(group, axis=0) for group in zip(*parts)]
                request = step.start(batch)
            except Exception as exc:
                for job in jobs:
                    job.error = exc
                request = None
            inflight.queue.put((jobs, request))

        # The carry slot holds a request taken from the queue but left for the next batch.
        def serve_carry(item: Any, stage: _Stage) -> None:
            work(item, stage)
            while carry:
                work(take(stage), stage)

        return serve_carry

    def _complete_worker(self, step: DeviceStep) -> Callable[[Any, _Stage], None]:
        def work(item: Any, stage: _Stage) -> None:
            if item is _STOP:
                return
            jobs, request = item
            if request is None:
                for job in jobs:
                    self._forward(stage, job)
                return
            outputs = self._complete(step, jobs, request)
            for job, ys in zip(jobs, outputs):
                if isinstance(ys, BaseException):
                    job.error = ys
                else:
                    job.values.update(zip(step.outputs, ys))
                self._forward(stage, job)

        return work

    @staticmethod
    def _complete(
        step: DeviceStep, jobs: list[Job], request: DeviceRequest
    ) -> list[list[np.ndarray] | BaseException]:
        try:
            ys = step.complete(request)
        except Exception as exc:
            if len(jobs) == 1:
                return [exc]
            ys = None
        if ys is None:
            # A gathered batch failed: run each request alone so one bad request fails alone.
            alone: list[list[np.ndarray] | BaseException] = []
            for job in jobs:
                try:
                    xs = [np.asarray(job.values[name]) for name in step.inputs]
                    alone.append(step.complete(step.start(xs)))
                except Exception as exc:
                    alone.append(exc)
            return alone
        if len(jobs) == 1:
            return [ys]
        split: list[list[np.ndarray] | BaseException] = []
        first = 0
        for job in jobs:
            split.append([y[first : first + job.frames] for y in ys])
            first += job.frames
        return split

    # ---- shutdown ------------------------------------------------------------------------
    def on_worker_thread(self) -> bool:
        """Whether the calling thread is one of this pipeline's stage threads."""
        current = threading.current_thread()
        return any(current is t for s in self._stages for t in s.threads)

    @property
    def alive(self) -> bool:
        """Whether every stage thread is still running (False after close)."""
        return all(t.is_alive() for s in self._stages for t in s.threads)

    def close(self, timeout: float = 10.0) -> None:
        """Fail requests not yet started, finish those on the device, join every thread."""
        with self._close_lock:
            if self._closed:
                return
            self._closing = True
            self._closed = True
            if self._stages:
                for _ in range(self._stages[0].workers):
                    self._stages[0].queue.put(_STOP)
        for stage in self._stages:
            for thread in stage.threads:
                if thread is not threading.current_thread():
                    thread.join(timeout)


def _frames(xs: Sequence[np.ndarray]) -> int:
    """Frames of a request (its leading dimension); 0 when inputs disagree or have no batch."""
    counts = {int(x.shape[0]) if x.ndim else -1 for x in xs}
    if len(counts) != 1:
        return 0
    n = counts.pop()
    return n if n > 0 else 0


def _stackable(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> bool:
    return all(x.shape[1:] == y.shape[1:] and x.dtype == y.dtype for x, y in zip(a, b))
