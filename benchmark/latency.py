"""Timing loops and their statistics: warm-up calls, then N timed calls (of one function, or of several
interleaved) summarised as p50, p90, min (ms)."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from egeunet.errors import EGEUNetError


def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    """p10, p25, p50, p75, p90, min and mean in milliseconds, and the run count, of timings given in seconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    if ms.size == 0:
        raise EGEUNetError("no timings to summarise: --runs must be at least 1")
    return {**{f"p{q}_ms": float(np.percentile(ms, q)) for q in (10, 25, 50, 75, 90)},
            "min_ms": float(ms.min()), "mean_ms": float(ms.mean()), "runs": int(ms.size)}


def time_calls(fn: Callable[[], object], runs: int, warmup: int = 10) -> list[float]:
    """Call ``fn`` ``warmup`` times untimed (caches, lazy allocations), then ``runs`` times; seconds per call."""
    return time_interleaved([fn], runs, warmup)[0]


def time_interleaved(fns: Sequence[Callable[[], object]], runs: int, warmup: int = 10) -> list[list[float]]:
    """Seconds per call of each function, calls interleaved so a busy machine biases none of them.

    Each round calls every function once, the first one rotating from round to round (no function always
    follows another); ``warmup`` untimed rounds come first. Returns one list of ``runs`` timings per function.
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for i in range(runs):
        for k in range(len(fns)):
            j = (i + k) % len(fns)
            start = time.perf_counter()
            fns[j]()
            times[j].append(time.perf_counter() - start)
    return times
