"""Where a run's time goes: seconds per named phase, summed across threads.

Each thread of the GPU engine (the step loop, the upload and download threads) adds the time it spends in
each phase, waits included; the totals say which stage holds the others up (``--log-level debug`` prints
them after a run; ``scripts/bench_gpu.py`` records them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class PhaseClock:
    """Seconds per phase; safe to use from several threads."""

    def __init__(self) -> None:
        self._totals: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, phase: str, seconds: float) -> None:
        with self._lock:
            self._totals[phase] = self._totals.get(phase, 0.0) + seconds

    @contextmanager
    def measure(self, phase: str) -> Iterator[None]:
        """Add the time spent inside the ``with`` block to ``phase``."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - began)

    def totals(self) -> dict[str, float]:
        with self._lock:
            return dict(self._totals)

    def summary(self) -> str:
        """"phase 1.23 s, ..." in the order the phases were first seen."""
        return ", ".join(f"{phase} {seconds:.2f} s" for phase, seconds in self.totals().items())
