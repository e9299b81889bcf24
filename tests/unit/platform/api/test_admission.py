"""Admission: at most ``limit`` calls at once, the next refused at once, no permit ever leaked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from ledgerd.kernel.errors import RETRY_AFTER_DETAIL, ErrorCode, LedgerdError
from ledgerd.platform.api.admission import Admission
from tests.unit.platform.concurrency.support import settle, until

RETRY_AFTER_S = 0.25


def _refusal(admission: Admission) -> LedgerdError:
    with pytest.raises(LedgerdError) as refused, admission.admit():
        pytest.fail("admitted over the limit")
    return refused.value


def test_admits_up_to_the_limit_and_refuses_the_next_with_a_retry_hint() -> None:
    admission = Admission(2, retry_after_s=RETRY_AFTER_S)
    with admission.admit(), admission.admit():
        assert admission.in_flight == 2
        error = _refusal(admission)
        assert error.code is ErrorCode.OVERLOADED
        assert dict(error.details) == {RETRY_AFTER_DETAIL: "0.25"}
        assert admission.in_flight == 2  # a refusal takes nothing
    assert admission.in_flight == 0
    assert admission.refused == 1


def test_a_released_permit_admits_the_next_call() -> None:
    admission = Admission(1, retry_after_s=RETRY_AFTER_S)
    with admission.admit():
        _refusal(admission)
    with admission.admit():
        assert admission.in_flight == 1


def test_an_error_in_the_call_releases_its_permit_and_propagates_unchanged() -> None:
    admission = Admission(1, retry_after_s=RETRY_AFTER_S)
    failure = LookupError("the call failed")
    with pytest.raises(LookupError) as raised, admission.admit():
        raise failure
    assert raised.value is failure
    assert admission.in_flight == 0


async def test_contending_calls_get_exactly_limit_permits_and_the_rest_are_refused() -> None:
    admission = Admission(5, retry_after_s=RETRY_AFTER_S)
    gate = asyncio.Event()
    peak = 0

    async def call() -> str:
        nonlocal peak
        try:
            with admission.admit():
                peak = max(peak, admission.in_flight)
                await gate.wait()
                return "done"
        except LedgerdError as error:
            return str(error.code)

    calls = [asyncio.create_task(call()) for _ in range(40)]
    await until(lambda: sum(task.done() for task in calls) == 35)
    assert admission.in_flight == 5
    gate.set()
    outcomes = await asyncio.gather(*calls)
    assert outcomes.count("done") == 5
    assert outcomes.count("OVERLOADED") == 35
    assert peak == 5
    assert admission.in_flight == 0


async def test_a_cancelled_call_releases_its_permit() -> None:
    admission = Admission(1, retry_after_s=RETRY_AFTER_S)
    never = asyncio.Event()

    async def call() -> None:
        with admission.admit():
            await never.wait()

    task = asyncio.create_task(call())
    await until(lambda: admission.in_flight == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert admission.in_flight == 0
    with admission.admit():
        pass


async def test_a_stream_holds_its_permit_between_items_and_releases_it_when_closed() -> None:
    admission = Admission(1, retry_after_s=RETRY_AFTER_S)

    async def stream() -> AsyncGenerator[int, None]:
        with admission.admit():
            for item in range(3):
                yield item

    items = stream()
    assert await anext(items) == 0
    await settle()
    assert admission.in_flight == 1  # suspended between items, still running
    _refusal(admission)
    await items.aclose()  # the client stopped reading
    assert admission.in_flight == 0


async def test_a_stream_that_fails_part_way_releases_its_permit() -> None:
    admission = Admission(1, retry_after_s=RETRY_AFTER_S)

    async def stream() -> AsyncIterator[int]:
        with admission.admit():
            yield 1
            raise LookupError("gone mid-way")

    with pytest.raises(LookupError):
        _ = [item async for item in stream()]
    assert admission.in_flight == 0


@pytest.mark.parametrize("limit", [0, -1])
def test_the_limit_must_be_positive(limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        Admission(limit, retry_after_s=RETRY_AFTER_S)
