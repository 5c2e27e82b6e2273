"""Per-stage timing of a session plan (off by default).

When a :class:`StageTimer` is set on a plan, every CPU segment records its run time under its
name (``cpu0``, ``cpu1``...), and every HailoOp step records ``<node>:to_device`` (host
transforms in), ``<node>:device`` (submit to completion, so it includes waiting in the device
queue when requests overlap), ``<node>:from_device`` (host transforms out) and
``<node>:cpu_fallback`` when it ran its float body on the CPU. With no timer set, the steps do
one attribute test per run.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class StageStats:
    """What a :class:`StageTimer` measured for one stage (times in milliseconds)."""

    count: int
    total_ms: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float

    def as_dict(self) -> dict[str, float]:
        """The fields as a dict (for JSON)."""
        return asdict(self)


class StageTimer:
    """Thread-safe collector of per-stage durations (seconds), kept in first-seen stage order."""

    def __init__(self, max_samples: int = 1_000_000) -> None:
        self._samples: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        self._max = max_samples

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            samples = self._samples.setdefault(stage, [])
            if len(samples) < self._max:
                samples.append(seconds)

    def reset(self) -> None:
        with self._lock:
            self._samples.clear()

    def stats(self) -> dict[str, StageStats]:
        """Count, total, mean and percentiles per stage."""
        with self._lock:
            copied = {k: list(v) for k, v in self._samples.items() if v}
        out: dict[str, StageStats] = {}
        for stage, samples in copied.items():
            ms = np.asarray(samples, dtype=np.float64) * 1000.0
            p50, p90, p99 = np.percentile(ms, [50, 90, 99])
            out[stage] = StageStats(
                count=int(ms.size),
                total_ms=float(ms.sum()),
                mean_ms=float(ms.mean()),
                p50_ms=float(p50),
                p90_ms=float(p90),
                p99_ms=float(p99),
            )
        return out
