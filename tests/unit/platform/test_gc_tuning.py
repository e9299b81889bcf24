"""GC tuning: settings applied to the real collector, and pauses recorded per generation."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ledgerd.platform.gc_tuning import GcPauses, tune_after_start


@pytest.fixture
def collector_restored() -> Iterator[None]:
    """Each test changes the process-wide collector; put it back as it was."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("collector_restored")
def test_freezing_moves_the_live_heap_out_of_the_collectors_sight() -> None:
    gc.unfreeze()
    survivor = [object() for _ in range(100)]
    tune_after_start(freeze=True, gen0_threshold=0)
    assert gc.get_freeze_count() >= len(survivor)
    assert gc.is_tracked(survivor)


@pytest.mark.usefixtures("collector_restored")
def test_freezing_first_frees_what_start_up_left_as_garbage() -> None:
    gc.unfreeze()
    freed: list[str] = []

    class Cycle:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            freed.append("cycle")

    Cycle()  # unreachable at once, but only a collection can free a cycle
    tune_after_start(freeze=True, gen0_threshold=0)
    assert freed == ["cycle"]


@pytest.mark.usefixtures("collector_restored")
def test_the_young_threshold_changes_alone_and_zero_keeps_it() -> None:
    gc.set_threshold(700, 11, 12)
    tune_after_start(freeze=False, gen0_threshold=0)
    assert gc.get_threshold() == (700, 11, 12)
    assert gc.get_freeze_count() == 0
    tune_after_start(freeze=False, gen0_threshold=25_000)
    assert gc.get_threshold() == (25_000, 11, 12)


def test_pauses_are_counted_per_generation_while_recording() -> None:
    pauses = GcPauses()
    pauses.start()
    try:
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
    finally:
        pauses.stop()
    gc.collect(1)  # after stop(): not counted

    assert pauses.generations[0].collections >= 1
    assert pauses.generations[2].collections == 2
    assert 0 < pauses.generations[2].longest_s <= pauses.generations[2].total_s
    assert pauses.longest_s == max(p.longest_s for p in pauses.generations.values())
    assert pauses.total_s == pytest.approx(sum(p.total_s for p in pauses.generations.values()))
    summary = pauses.summary()
    assert summary.startswith(f"gc: {pauses.total_s * 1000:.1f} ms in ")
    assert "gen2 2" in summary
    assert pauses._record not in gc.callbacks


def test_starting_twice_records_each_collection_once() -> None:
    pauses = GcPauses()
    pauses.start()
    pauses.start()
    try:
        gc.collect(2)
    finally:
        pauses.stop()
    assert pauses.generations[2].collections == 1
