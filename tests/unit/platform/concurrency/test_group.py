"""ErrorGroup: a TaskGroup whose go() holds the spawner back at the concurrency limit."""

import asyncio

import pytest

from ledgerd.platform.concurrency import ErrorGroup
from tests.unit.platform.concurrency.support import settle


async def test_runs_everything_and_returns_the_tasks() -> None:
    async def double(value: int) -> int:
        await asyncio.sleep(0)
        return value * 2

    async with ErrorGroup(limit=3) as group:
        tasks = [await group.go(double, value) for value in range(10)]
    assert [task.result() for task in tasks] == [value * 2 for value in range(10)]


async def test_never_more_than_limit_run_at_once() -> None:
    running = 0
    peak = 0

    async def job() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await settle(3)
        running -= 1

    async with ErrorGroup(limit=3) as group:
        for _ in range(20):
            await group.go(job)
    assert peak == 3


async def test_go_waits_for_a_free_slot() -> None:
    release = asyncio.Event()
    started: list[str] = []

    async def job(name: str) -> None:
        started.append(name)
        await release.wait()

    async with ErrorGroup(limit=1) as group:
        await group.go(job, "first")
        spawning = asyncio.create_task(group.go(job, "second"))
        await settle()
        assert not spawning.done()  # backpressure on the spawner
        assert started == ["first"]
        release.set()
        await spawning
    assert started == ["first", "second"]


async def test_the_first_error_cancels_the_rest_and_is_raised_first() -> None:
    cancelled: list[int] = []

    async def slow(number: int) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(number)
            raise

    async def fail() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    async def run() -> None:
        async with ErrorGroup(limit=5) as group:
            await group.go(slow, 1)
            await group.go(slow, 2)
            await group.go(fail)
            await asyncio.Event().wait()  # the failure cancels the block too

    with pytest.raises(ExceptionGroup) as raised:
        await run()
    assert isinstance(raised.value.exceptions[0], ValueError)
    assert sorted(cancelled) == [1, 2]


async def test_a_spawner_cancelled_while_waiting_for_a_slot_starts_nothing() -> None:
    calls: list[str] = []
    release = asyncio.Event()

    async def job(name: str) -> None:
        calls.append(name)
        await release.wait()

    async with ErrorGroup(limit=1) as group:
        await group.go(job, "first")
        spawning = asyncio.create_task(group.go(job, "never"))
        await settle()
        spawning.cancel()
        with pytest.raises(asyncio.CancelledError):
            await spawning
        release.set()
    assert calls == ["first"]


async def test_no_limit_means_no_waiting_and_limit_must_be_positive() -> None:
    async with ErrorGroup() as group:
        assert group.limit is None
        tasks = [await group.go(asyncio.sleep, 0) for _ in range(5)]
    assert all(task.done() for task in tasks)
    with pytest.raises(ValueError, match="limit"):
        ErrorGroup(limit=0)
