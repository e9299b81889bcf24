"""Micro-benchmarks of the hot path's pieces (pytest-benchmark; run by `make bench`).

Each benchmark also records, in its ``extra_info``, what one call allocates: the peak of
traced memory and the blocks still held afterwards (tracemalloc), so a change that makes the
hot path allocate more shows up even where the time is noise.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

Benchmark = Any  # pytest-benchmark's fixture (its types are not part of its public API)
Allocations = Callable[[Callable[[], object]], None]


def record_allocations(benchmark: Benchmark, work: Callable[[], object]) -> None:
    """Run ``work`` once under tracemalloc and note its peak and retained memory."""
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        kept = work()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    benchmark.extra_info["peak_bytes"] = peak - before
    benchmark.extra_info["retained_bytes"] = after - before
    del kept


@pytest.fixture
def allocations(benchmark: Benchmark) -> Allocations:
    return lambda work: record_allocations(benchmark, work)
