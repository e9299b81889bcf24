"""Notifier: broadcast wake-ups, and a version number so that no change is missed."""

import asyncio

import pytest

from ledgerd.platform.concurrency import Notifier
from tests.unit.platform.concurrency.support import settle


async def test_notify_all_wakes_every_waiter_and_bumps_the_version() -> None:
    notifier = Notifier()
    waiters = [asyncio.create_task(notifier.changed(since=0)) for _ in range(4)]
    await settle()
    assert not any(waiter.done() for waiter in waiters)
    assert notifier.notify_all() == 1
    assert await asyncio.gather(*waiters) == [1, 1, 1, 1]


async def test_a_change_made_while_the_waiter_was_busy_is_not_missed() -> None:
    notifier = Notifier()
    seen = notifier.version
    notifier.notify_all()  # happens while the consumer is elsewhere
    async with asyncio.timeout(5):  # returns at once; a lost wake-up would hang here
        assert await notifier.changed(since=seen) == 1


async def test_wait_checks_the_predicate_now_and_after_each_notification() -> None:
    notifier = Notifier()
    balance = {"value": 0}
    waiting = asyncio.create_task(notifier.wait(lambda: balance["value"] >= 3))
    for value in (1, 2):
        balance["value"] = value
        notifier.notify_all()
        await settle()
        assert not waiting.done()
    balance["value"] = 3
    notifier.notify_all()
    assert await waiting == 3
    assert await notifier.wait(lambda: True) == 3  # already true: no waiting


async def test_a_cancelled_waiter_neither_stays_registered_nor_disturbs_the_others() -> None:
    notifier = Notifier()
    leaving = asyncio.create_task(notifier.changed(since=0))
    staying = asyncio.create_task(notifier.changed(since=0))
    await settle()
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert len(notifier._waiters) == 1
    notifier.notify_all()
    assert await staying == 1
