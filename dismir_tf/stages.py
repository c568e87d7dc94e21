"""Where a run's time and memory go: wall clock, CPU time and peak memory
per stage (load, graph, train, evaluation, diagnostics, test).

A :class:`StageClock` times named stages with ``with clock("graph"):``;
a stage entered again accumulates (training and evaluation alternate).
CPU time is the whole process's (``time.process_time``: every thread,
tf.data's and TensorFlow's included), so on a 2-core machine it can exceed
the wall clock.  Peak memory is the process's resident-set high-water mark
(``ru_maxrss``) when the stage last ended, and how much the stage raised it.
Figures cover this process only (a resumed run counts from its restart).
"""

from __future__ import annotations

import contextlib
import dataclasses
import resource
import sys
import time
from collections.abc import Iterator


def peak_rss_mib() -> float:
    """The process's peak resident set so far, MiB (Linux: ru_maxrss KiB;
    macOS: bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 1024)


@dataclasses.dataclass
class Stage:
    """One stage's totals: seconds of wall clock and CPU, entries, the peak
    RSS (MiB) when it last ended and how far it raised the peak."""

    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    calls: int = 0
    peak_rss_mib: float = 0.0
    raised_peak_mib: float = 0.0


class StageClock:
    """Accumulates :class:`Stage` figures by name, in first-entry order."""

    def __init__(self) -> None:
        self.stages: dict[str, Stage] = {}
        self._start = time.perf_counter()
        self._start_cpu = time.process_time()

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        stage = self.stages.setdefault(name, Stage())
        before = peak_rss_mib()
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            stage.wall_seconds += time.perf_counter() - t0
            stage.cpu_seconds += time.process_time() - c0
            stage.calls += 1
            stage.peak_rss_mib = peak_rss_mib()
            stage.raised_peak_mib += max(stage.peak_rss_mib - before, 0.0)

    def add(
        self, name: str, wall_seconds: float, cpu_seconds: float, peak_before_mib: float
    ) -> None:
        """Adds a span timed by the caller (e.g. a training interval that
        ends where a callback's evaluation begins); ``peak_before_mib`` is
        :func:`peak_rss_mib` at its start."""
        stage = self.stages.setdefault(name, Stage())
        stage.wall_seconds += wall_seconds
        stage.cpu_seconds += cpu_seconds
        stage.calls += 1
        stage.peak_rss_mib = peak_rss_mib()
        stage.raised_peak_mib += max(stage.peak_rss_mib - peak_before_mib, 0.0)

    def to_dict(self) -> dict:
        """JSON-able: per stage, and the process's totals so far."""
        out = {
            name: {
                k: round(v, 3) if isinstance(v, float) else v
                for k, v in dataclasses.asdict(s).items()
            }
            for name, s in self.stages.items()
        }
        out["total"] = {
            "wall_seconds": round(time.perf_counter() - self._start, 3),
            "cpu_seconds": round(time.process_time() - self._start_cpu, 3),
            "peak_rss_mib": round(peak_rss_mib(), 1),
        }
        return out

    def summary(self) -> str:
        """One line: each stage's wall seconds, then the total and the
        peak memory."""
        parts = [f"{name} {s.wall_seconds:,.1f} s" for name, s in self.stages.items()]
        total = self.to_dict()["total"]
        return (
            f"time: {', '.join(parts)}; total {total['wall_seconds']:,.1f}"
            f" s wall, {total['cpu_seconds']:,.1f} s CPU; peak memory "
            f"{total['peak_rss_mib'] / 1024:,.2f} GiB"
        )
