"""The benchmarks' one timing helper: the median wall time of repeated calls."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_seconds(fn: Callable[[], Any], repeat: int, stop_after: float | None = None) -> tuple[float, Any]:
    """Median seconds of ``repeat`` calls of ``fn`` and its last result; no further calls once one call has taken
    more than ``stop_after`` seconds (slow paths are timed once)."""
    runs, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t0)
        if stop_after is not None and runs[-1] > stop_after:
            break
    return statistics.median(runs), out
