"""Once: one successful run shared by all; a failure is shared and then retried."""

import asyncio

import pytest

from ledgerd.platform.concurrency import Once
from tests.unit.platform.concurrency.support import settle


async def test_concurrent_callers_share_one_run() -> None:
    once = Once[str]()
    runs = 0
    release = asyncio.Event()

    async def init() -> str:
        nonlocal runs
        runs += 1
        await release.wait()
        return "ready"

    callers = [asyncio.create_task(once.do(init)) for _ in range(5)]
    await settle()
    assert not once.done
    release.set()
    assert await asyncio.gather(*callers) == ["ready"] * 5
    assert await once.do(init) == "ready"
    assert runs == 1
    assert once.done


async def test_a_failure_is_shared_by_its_waiters_and_the_next_caller_retries() -> None:
    once = Once[int]()
    attempts = 0
    release = asyncio.Event()

    async def init() -> int:
        nonlocal attempts
        attempts += 1
        await release.wait()
        if attempts == 1:
            raise ConnectionError("database not up yet")
        return 42

    callers = [asyncio.create_task(once.do(init)) for _ in range(3)]
    await settle()
    release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)
    assert not once.done
    assert await once.do(init) == 42
    assert attempts == 2


async def test_a_cancelled_runner_does_not_fail_the_waiters_one_of_them_runs_it() -> None:
    once = Once[str]()
    started: list[int] = []
    gates = [asyncio.Event(), asyncio.Event()]

    async def init() -> str:
        attempt = len(started)
        started.append(attempt)
        await gates[attempt].wait()
        return f"attempt {attempt}"

    runner = asyncio.create_task(once.do(init))
    await settle()
    waiter = asyncio.create_task(once.do(init))
    await settle()
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    await settle()
    assert started == [0, 1]  # the waiter took over
    gates[1].set()
    assert await waiter == "attempt 1"


async def test_none_is_a_value() -> None:
    once = Once[None]()
    runs = 0

    async def init() -> None:
        nonlocal runs
        runs += 1

    await once.do(init)
    await once.do(init)
    assert runs == 1
