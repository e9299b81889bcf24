"""Deadlines: a scope bounds its block, the earliest enclosing deadline wins, none leaks."""

import asyncio

import pytest

from ledgerd.kernel import deadline
from ledgerd.kernel.errors import ErrorCode


async def test_no_scope_means_no_deadline() -> None:
    assert deadline.remaining() is None
    async with deadline.deadline_scope(None):
        assert deadline.remaining() is None


async def test_a_scope_sets_the_remaining_time_and_clears_it_after() -> None:
    async with deadline.deadline_scope(30):
        left = deadline.remaining()
        assert left is not None
        assert 0 < left <= 30
    assert deadline.remaining() is None


async def test_the_earlier_of_nested_deadlines_wins() -> None:
    async with deadline.deadline_scope(5):
        async with deadline.deadline_scope(60):
            left = deadline.remaining()
            assert left is not None
            assert left <= 5
        async with deadline.deadline_scope(1):
            left = deadline.remaining()
            assert left is not None
            assert left <= 1


async def test_work_past_the_deadline_is_cancelled_with_a_stable_code() -> None:
    finished = asyncio.Event()

    async def slow() -> None:
        await asyncio.Event().wait()  # never set: only the deadline ends this
        finished.set()

    with pytest.raises(deadline.DeadlineExceededError) as raised:
        async with deadline.deadline_scope(0.01):
            await slow()
    assert raised.value.code is ErrorCode.DEADLINE_EXCEEDED
    assert not finished.is_set()
    assert deadline.remaining() is None


async def test_tasks_started_inside_see_the_same_deadline() -> None:
    async with deadline.deadline_scope(10):
        outer = deadline.remaining()
        inner = await asyncio.create_task(asyncio.sleep(0, result=deadline.remaining()))
    assert outer is not None
    assert inner is not None
    assert inner <= outer


async def test_a_timeout_raised_by_the_work_itself_is_not_reported_as_ours() -> None:
    async def gives_up() -> None:
        raise TimeoutError

    with pytest.raises(TimeoutError) as raised:
        async with deadline.deadline_scope(30):
            await gives_up()
    assert not isinstance(raised.value, deadline.DeadlineExceededError)


async def test_a_known_deadline_is_seen_but_cancels_nothing() -> None:
    with deadline.deadline_known(0.01):
        left = deadline.remaining()
        assert left is not None
        assert 0 <= left <= 0.01
        await asyncio.sleep(0.05)  # past it: nothing was cancelled
        assert deadline.remaining() == 0
    assert deadline.remaining() is None


async def test_a_known_deadline_never_extends_an_enclosing_one() -> None:
    async with deadline.deadline_scope(1):
        with deadline.deadline_known(60):
            left = deadline.remaining()
            assert left is not None
            assert left <= 1
        with deadline.deadline_known(None):
            assert deadline.remaining() is not None
