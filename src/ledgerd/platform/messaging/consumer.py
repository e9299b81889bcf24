"""Consuming events effectively once: at-least-once delivery plus an inbox.

Brokers deliver at least once (a relay may publish an event again, a consumer may die between
handling a message and acknowledging it). ``Consumer`` makes a handler see each event once
anyway: in one transaction it records the event's id in the ``inbox`` table under the
consumer's name and runs the handler, which writes its own state through the same unit of
work; only after the commit is the message acknowledged. A redelivered event finds its id
in the inbox and is acknowledged without running the handler again.

A message that is not an event is logged with the reason and acknowledged (it would never
become one), and consuming goes on. A handler that fails rolls its transaction back (the
inbox row with it) and the message is nacked, to be delivered again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, PrimaryKeyConstraint, String, Table, insert, select

from ledgerd.platform.concurrency import Notifier
from ledgerd.platform.db.schema import metadata
from ledgerd.platform.db.types import UtcDateTime
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork, current_connection
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.ports import Delivery, Subscriber

log = logging.getLogger(__name__)

inbox = Table(
    "inbox",
    metadata,
    Column("consumer", String(128), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("handled_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("consumer", "event_id"),
)

Handler = Callable[[Envelope], Awaitable[None]]
_RECANCEL_AFTER_S = 0.5


@dataclass
class ConsumerStats:
    handled: int = 0
    duplicates: int = 0
    malformed: int = 0
    failed: int = 0


class Consumer:
    """One named consumer: hands each event to ``handler`` once (see the module docstring)."""

    def __init__(
        self, subscriber: Subscriber, name: str, handler: Handler, uow: SqlAlchemyUnitOfWork
    ) -> None:
        self._subscriber = subscriber
        self.name = name
        self._handler = handler
        self._uow = uow
        self.stats = ConsumerStats()
        self.progress = Notifier()  # notified after each message is settled

    async def run(self, stop: asyncio.Event) -> ConsumerStats:
        """Consume until ``stop`` is set (or the deliveries end)."""
        deliveries = self._subscriber.deliveries()
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                receiving = asyncio.ensure_future(anext(deliveries))
                await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not receiving.done():
                    await _cancel(receiving)
                    break
                try:
                    delivery = receiving.result()
                except StopAsyncIteration:
                    break
                await self._take(delivery)
                self.progress.notify_all()
        finally:
            stopping.cancel()
            closer = getattr(deliveries, "aclose", None)
            if closer is not None:
                await closer()
        return self.stats

    async def _take(self, delivery: Delivery) -> None:
        if delivery.envelope is None:
            self.stats.malformed += 1
            log.warning("consumer %s rejected a message: %s", self.name, delivery.problem)
            await delivery.ack()
            return
        try:
            first_time = await _handle_once(self._uow, self.name, delivery.envelope, self._handler)
        except Exception:
            self.stats.failed += 1
            log.exception(
                "consumer %s failed on event %s; it will be delivered again",
                self.name,
                delivery.envelope.id,
            )
            await delivery.nack()
            return
        if first_time:
            self.stats.handled += 1
        else:
            self.stats.duplicates += 1
        await delivery.ack()


async def _cancel(receiving: asyncio.Future[Delivery]) -> None:
    """Cancel a pending receive and wait until it has ended, before its generator is closed.

    Cancelled again for as long as it runs: on Python 3.11, ``asyncio.wait_for`` returns the
    result and drops the cancellation when both land in the same loop iteration (fixed in
    3.12), and broker clients use it (redis-py sends every command through it), so one
    cancellation can be lost and the receive would go on waiting for messages.
    """
    while not receiving.done():
        receiving.cancel()
        await asyncio.wait({receiving}, timeout=_RECANCEL_AFTER_S)


async def _handle_once(
    uow: SqlAlchemyUnitOfWork, name: str, envelope: Envelope, handler: Handler
) -> bool:
    async with uow.begin() as transaction:
        connection = current_connection()
        seen = await connection.execute(
            select(inbox.c.event_id).where(
                inbox.c.consumer == name, inbox.c.event_id == envelope.id
            )
        )
        if seen.first() is not None:
            return False
        await connection.execute(
            insert(inbox).values(consumer=name, event_id=envelope.id, handled_at=datetime.now(UTC))
        )
        await handler(envelope)
        await transaction.commit()
        return True
