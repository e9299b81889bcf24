"""SingleFlight: one execution per key, shared outcome, cancellation rules for its callers."""

import asyncio

import pytest

from ledgerd.platform.concurrency import SingleFlight
from tests.unit.platform.concurrency.support import settle


class Loader:
    """A slow load that counts its executions and finishes when told."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.cancelled = False
        self.error: Exception | None = None

    def was_cancelled(self) -> bool:
        return self.cancelled

    async def __call__(self) -> int:
        self.calls += 1
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.error is not None:
            raise self.error
        return self.calls


async def test_concurrent_callers_of_one_key_share_one_execution() -> None:
    flight = SingleFlight[str, int]()
    load = Loader()
    callers = [asyncio.create_task(flight.do("balance:1", load)) for _ in range(10)]
    await settle()
    assert flight.in_flight("balance:1")
    load.release.set()
    assert await asyncio.gather(*callers) == [1] * 10
    assert load.calls == 1
    assert not flight.in_flight("balance:1")


async def test_an_exception_is_shared_too() -> None:
    flight = SingleFlight[str, int]()
    load = Loader()
    load.error = LookupError("no such account")
    callers = [asyncio.create_task(flight.do("k", load)) for _ in range(3)]
    await settle()
    load.release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(result is load.error for result in results)
    assert load.calls == 1


async def test_a_call_after_the_execution_finished_runs_again() -> None:
    flight = SingleFlight[str, int]()
    load = Loader()
    load.release.set()
    assert await flight.do("k", load) == 1
    assert await flight.do("k", load) == 2


async def test_different_keys_do_not_share() -> None:
    flight = SingleFlight[int, int]()
    load = Loader()
    load.release.set()
    results = await asyncio.gather(flight.do(1, load), flight.do(2, load))
    assert sorted(results) == [1, 2]


async def test_a_cancelled_caller_does_not_cancel_the_execution_others_wait_for() -> None:
    flight = SingleFlight[str, int]()
    load = Loader()
    first = asyncio.create_task(flight.do("k", load))  # the caller that started it
    await settle()
    second = asyncio.create_task(flight.do("k", load))
    await settle()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await settle()
    assert not load.cancelled
    load.release.set()
    assert await second == 1
    assert load.calls == 1


async def test_the_last_caller_to_leave_cancels_the_execution_and_waits_for_it() -> None:
    flight = SingleFlight[str, int]()
    load = Loader()
    execution_over_when_leaving: list[bool] = []

    async def caller() -> None:
        try:
            await flight.do("k", load)
        finally:
            execution_over_when_leaving.append(load.was_cancelled())

    callers = [asyncio.create_task(caller()) for _ in range(2)]
    await settle()
    callers[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await callers[0]
    callers[1].cancel()
    with pytest.raises(asyncio.CancelledError):
        await callers[1]
    # The first one out left it running for the second; the last one out cancelled it, and had
    # waited for it to finish by the time its do() ended: nothing outlives its callers.
    assert execution_over_when_leaving == [False, True]
    assert not flight.in_flight("k")
    load.release.set()
    assert await flight.do("k", load) == 2  # a fresh execution


async def test_forget_makes_the_next_caller_start_afresh() -> None:
    flight = SingleFlight[str, int]()
    load = Loader()
    old = asyncio.create_task(flight.do("k", load))
    await settle()
    flight.forget("k")
    new = asyncio.create_task(flight.do("k", load))
    await settle()
    assert load.calls == 2
    load.release.set()
    assert sorted(await asyncio.gather(old, new)) == [2, 2]
