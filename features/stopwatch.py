"""Per-stage wall time, and peak traced memory when tracemalloc is tracing (the benchmarks turn it on)."""

from __future__ import annotations

import time
import tracemalloc
from contextlib import contextmanager


class Stopwatch:
    """Collects {stage: milliseconds} and, under tracemalloc, {stage: peak MiB}."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self.peak_mib: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        tracing = tracemalloc.is_tracing()
        if tracing:
            tracemalloc.reset_peak()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = 1e3 * (time.perf_counter() - start)
            if tracing:
                self.peak_mib[name] = tracemalloc.get_traced_memory()[1] / 2**20
