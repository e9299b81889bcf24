"""Garbage-collector tuning for the long-running commands, and a record of its pauses.

A server allocates a few container objects per call and keeps almost none, while start-up
leaves a large heap of modules, classes and descriptors that live for the whole process.
CPython's defaults treat both alike: a young-generation collection every 700 net
allocations, and every so often a full collection that walks the whole start-up heap while
the event loop, and every call on it, waits. Measured with ``bench/gc_tuning.py``
(docs/benchmarks.md): over ten seconds of single-transfer calls the defaults spent about
0.7 s in collections, with full collections pausing the loop for up to 80 ms; freezing the
start-up heap and collecting the young generation every 10,000 allocations brought that to
about 45 ms, longest pause under 10 ms.

Freezing moves every object alive at that moment into a permanent generation the collector
never examines, so it is done once start-up is over (nothing needed is collected later:
frozen objects are only never *scanned*, their reference counts still free them).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any

PYTHON_DEFAULT_GEN0_THRESHOLD = 700


def tune_after_start(*, freeze: bool, gen0_threshold: int) -> None:
    """Apply the settings once start-up is over: freeze what exists, space young collections.

    ``gen0_threshold`` 0 keeps the interpreter's own threshold.
    """
    if freeze:
        # Collect first so start-up garbage is freed rather than frozen for good.
        gc.collect()
        gc.freeze()
    if gen0_threshold > 0:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(gen0_threshold, gen1, gen2)


@dataclass(slots=True)
class GenerationPauses:
    collections: int = 0
    total_s: float = 0.0
    longest_s: float = 0.0


@dataclass(slots=True)
class GcPauses:
    """Counts collections per generation and how long they stopped the process.

    A callback on ``gc.callbacks`` between ``start()`` and ``stop()``; cheap (two clock reads
    per collection), so the server keeps it on and reports it when it stops.
    """

    generations: dict[int, GenerationPauses] = field(
        default_factory=lambda: {generation: GenerationPauses() for generation in range(3)}
    )
    _began: float = 0.0

    def start(self) -> None:
        if self._record not in gc.callbacks:
            gc.callbacks.append(self._record)

    def stop(self) -> None:
        if self._record in gc.callbacks:
            gc.callbacks.remove(self._record)

    def _record(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._began = now
            return
        pauses = self.generations[info["generation"]]
        took = now - self._began
        pauses.collections += 1
        pauses.total_s += took
        pauses.longest_s = max(pauses.longest_s, took)

    @property
    def total_s(self) -> float:
        return sum(pauses.total_s for pauses in self.generations.values())

    @property
    def longest_s(self) -> float:
        return max(pauses.longest_s for pauses in self.generations.values())

    def summary(self) -> str:
        """One line, e.g. ``gc: 45.1 ms in 13 collections, longest 7.6 ms (gen0 12, ...)``."""
        count = sum(pauses.collections for pauses in self.generations.values())
        per_generation = ", ".join(
            f"gen{generation} {pauses.collections}"
            for generation, pauses in self.generations.items()
        )
        return (
            f"gc: {self.total_s * 1000:.1f} ms in {count} collections, "
            f"longest {self.longest_s * 1000:.1f} ms ({per_generation})"
        )
