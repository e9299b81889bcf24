"""Consumers: each event handled once despite redelivery; a downstream read model converges."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

from sqlalchemy import select

from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork
from ledgerd.platform.messaging.consumer import Consumer, inbox
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.hub import InProcessHub
from ledgerd.platform.messaging.ports import Delivery
from ledgerd.platform.outbox.relay import OutboxRelay
from tests.integration.conftest import LedgerApp
from tests.integration.outbox.helpers import DELIVERY_WAIT_S, EVERY_CHANGE, make_every_change
from tests.integration.outbox.read_model import create_read_model, project, projected, stored


async def _until_settled(consumer: Consumer, count: int) -> None:
    async with asyncio.timeout(DELIVERY_WAIT_S):
        await consumer.progress.wait(
            lambda: consumer.stats.handled + consumer.stats.duplicates >= count
        )


async def test_a_read_model_fed_twice_still_converges_to_the_ledger(ledger_app: LedgerApp) -> None:
    await create_read_model(ledger_app.engine)
    hub = await ledger_app.container.get(InProcessHub)
    consumer = Consumer(
        hub.subscribe(), "read-model", project, SqlAlchemyUnitOfWork(ledger_app.engine)
    )
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    await make_every_change(ledger_app, "books")
    relay = await ledger_app.container.get(OutboxRelay)
    await relay.sweep()
    # At least once: the same events published a second time, as after a relay crash.
    store_events = await (await ledger_app.container.get(type(relay._store))).read("books")
    await hub.publish(store_events)
    await _until_settled(consumer, 2 * len(EVERY_CHANGE))
    stop.set()
    await running

    assert (consumer.stats.handled, consumer.stats.duplicates) == (len(EVERY_CHANGE),) * 2
    async with ledger_app.engine.connect() as connection:
        handled = (await connection.execute(select(inbox.c.event_id))).scalars().all()
    assert sorted(handled) == sorted(envelope.id for envelope in store_events)
    model = await projected(ledger_app.engine)
    assert set(model) == {("books", "bank"), ("books", "alice")}
    assert model == await stored(ledger_app.queries, set(model))


class _FakeBrokerDeliveries:
    """A fake broker edge: hands out prepared deliveries and records acks and nacks."""

    def __init__(self, items: Sequence[Envelope | str]) -> None:
        self.items = list(items)
        self.acked: list[str] = []
        self.nacked: list[str] = []

    async def deliveries(self) -> AsyncGenerator[Delivery]:
        while self.items:
            item = self.items.pop(0)
            label = item if isinstance(item, str) else item.id

            async def ack(label: str = label) -> None:
                self.acked.append(label)

            async def nack(item: Envelope | str = item, label: str = label) -> None:
                self.nacked.append(label)
                self.items.append(item)  # the broker delivers it again, later

            if isinstance(item, str):
                yield Delivery(None, f"not an event: {item}", ack, nack)
            else:
                yield Delivery(item, None, ack, nack)

    async def aclose(self) -> None:
        return None


async def test_a_malformed_message_is_logged_and_a_failing_handler_retried(
    ledger_app: LedgerApp, caplog: object
) -> None:
    hub = await ledger_app.container.get(InProcessHub)
    subscription = hub.subscribe()
    await make_every_change(ledger_app, "books")
    await (await ledger_app.container.get(OutboxRelay)).sweep()
    events = [
        delivery.envelope
        async for delivery in _first(subscription.deliveries(), 3)
        if delivery.envelope is not None
    ]
    broker = _FakeBrokerDeliveries([events[0], "garbage", events[1], events[2]])
    failures = {events[1].id: 1}  # the handler fails once on the second event
    handled: list[str] = []

    async def handler(envelope: Envelope) -> None:
        if failures.get(envelope.id):
            failures[envelope.id] -= 1
            msg = "downstream hiccup"
            raise RuntimeError(msg)
        handled.append(envelope.id)

    consumer = Consumer(broker, "fussy", handler, SqlAlchemyUnitOfWork(ledger_app.engine))
    await consumer.run(asyncio.Event())  # the fake's deliveries end when all are settled

    assert handled == [events[0].id, events[2].id, events[1].id]
    assert (consumer.stats.handled, consumer.stats.malformed, consumer.stats.failed) == (3, 1, 1)
    assert broker.nacked == [events[1].id]
    assert sorted(broker.acked) == sorted(["garbage", *(e.id for e in events)])
    assert "consumer fussy rejected a message: not an event: garbage" in str(
        getattr(caplog, "text", "")
    )


async def _first(deliveries: AsyncGenerator[Delivery], count: int) -> AsyncGenerator[Delivery]:
    async with asyncio.timeout(DELIVERY_WAIT_S):
        for _ in range(count):
            yield await anext(deliveries)
    await deliveries.aclose()
