"""A consumer stops when told, even if its broker client loses a cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork
from ledgerd.platform.messaging.consumer import Consumer
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.ports import Delivery

STOP_WAIT_S = 10.0  # a bound for a hung consumer to fail the test, not a measurement


class _FakeClientThatLosesOneCancellation:
    """A fake broker edge: waits for messages that never come, and drops the first cancel.

    As redis-py does on Python 3.11 when a cancellation lands while ``asyncio.wait_for``
    completes a send: the caller's cancellation is gone and the wait goes on.
    """

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.cancels_seen = 0
        self.arrived: Delivery | None = None  # nothing ever does

    async def deliveries(self) -> AsyncIterator[Delivery]:
        while True:
            self.waiting.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancels_seen += 1
                if self.cancels_seen > 1:
                    raise
                task = asyncio.current_task()
                assert task is not None
                task.uncancel()
            if self.arrived is not None:
                yield self.arrived

    async def aclose(self) -> None:
        return None


async def _ignore(_envelope: Envelope) -> None:
    return None


async def test_a_lost_cancellation_does_not_keep_the_consumer_running() -> None:
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    subscriber = _FakeClientThatLosesOneCancellation()
    consumer = Consumer(subscriber, "patient", _ignore, SqlAlchemyUnitOfWork(engine))
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    await subscriber.waiting.wait()

    stop.set()
    async with asyncio.timeout(STOP_WAIT_S):
        stats = await running

    assert subscriber.cancels_seen == 2  # the first was lost, the consumer cancelled again
    assert (stats.handled, stats.malformed, stats.failed) == (0, 0, 0)
    await engine.dispose()
