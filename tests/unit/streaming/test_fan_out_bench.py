"""bench/streams.py, tiny and on the fake log: the benchmark still runs and says what happened.

The benchmark is not part of the suite (``python bench/streams.py``, docs/benchmarks.md); this
runs its fan-out and slow-subscriber measures with ten subscribers in well under a second, so
that a change to the hub that breaks them shows here rather than on the next benchmark day.
"""

from __future__ import annotations

import gc
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "streams.py"


@pytest.fixture(scope="module")
def streams() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_streams", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def collector_as_it_was() -> Iterator[None]:
    """The measures tune the collector as ``serve`` does; the rest of the suite gets it back."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.parametrize(("filtered", "reader"), [(False, "iterate"), (True, "within")])
async def test_the_fan_out_measure_times_every_event_to_every_subscriber(
    streams: ModuleType, filtered: bool, reader: str
) -> None:
    case = streams.FanOut(
        log="fake", subscribers=10, filtered=filtered, events=5, reader=reader, warm_up=1
    )
    async with streams.fake_log() as commits:
        result = await streams.measure_fan_out(commits, case, None)
    assert result["subscribers"] == 10
    assert 0 < result["first_p50_ms"] <= result["last_p50_ms"] <= result["last_max_ms"]


async def test_the_slow_measure_finds_the_non_readers_bounded_and_the_readers_served(
    streams: ModuleType,
) -> None:
    case = streams.Slow(log="fake", readers=3, non_readers=2, buffers=2, batch=64)
    async with streams.fake_log() as commits:
        result = await streams.measure_slow(commits, case)
    assert result["every_reader_got_every_event"]
    assert result["readers_moved_to_log"] == 0
    assert result["most_events_held_by_a_non_reader"] == result["buffer_events"]
    assert result["non_readers_still_live"] == 0
