"""The in-process hub: every subscriber gets everything in order; slow ones push back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.hub import InProcessHub
from ledgerd.platform.messaging.ports import Delivery, PublishError

WAIT_S = 5.0


def _envelopes(count: int) -> list[Envelope]:
    return [
        Envelope(
            id=f"e{n}",
            source="/ledgerd/ledgers/L",
            type="ledgerd.v1.TransferPosted",
            subject=f"transfers/t{n}",
            time=datetime(2030, 1, 1, tzinfo=UTC),
            ledger="L",
            sequence=n,
            data=b"x",
        )
        for n in range(1, count + 1)
    ]


async def _take(deliveries: AsyncIterator[Delivery], count: int) -> list[str]:
    taken: list[str] = []
    async with asyncio.timeout(WAIT_S):
        while len(taken) < count:
            delivery = await anext(deliveries)
            assert delivery.envelope is not None
            taken.append(delivery.envelope.id)
            await delivery.ack()
    return taken


async def test_every_subscriber_gets_every_envelope_in_order() -> None:
    hub = InProcessHub()
    first, second = hub.subscribe(), hub.subscribe()
    await hub.publish(_envelopes(5))
    expected = [f"e{n}" for n in range(1, 6)]
    assert await _take(first.deliveries(), 5) == expected
    assert await _take(second.deliveries(), 5) == expected
    await hub.aclose()


async def test_a_nacked_envelope_comes_again_first() -> None:
    hub = InProcessHub()
    subscription = hub.subscribe()
    await hub.publish(_envelopes(3))
    deliveries = subscription.deliveries()
    first = await anext(deliveries)
    await first.nack()
    assert await _take(deliveries, 3) == ["e1", "e2", "e3"]
    await hub.aclose()


async def test_a_full_subscriber_makes_publish_wait_instead_of_dropping() -> None:
    hub = InProcessHub(capacity=2)
    subscription = hub.subscribe()
    publishing = asyncio.create_task(hub.publish(_envelopes(4)))
    await asyncio.sleep(0)
    assert not publishing.done()  # two are buffered, the third waits for room
    assert await _take(subscription.deliveries(), 4) == ["e1", "e2", "e3", "e4"]
    async with asyncio.timeout(WAIT_S):
        await publishing
    await hub.aclose()


async def test_an_unsubscribed_subscriber_no_longer_holds_publishing_up() -> None:
    hub = InProcessHub(capacity=1)
    gone, staying = hub.subscribe(), hub.subscribe()
    await gone.aclose()
    async with asyncio.timeout(WAIT_S):
        await hub.publish(_envelopes(1))
    assert await _take(staying.deliveries(), 1) == ["e1"]
    await hub.aclose()


async def test_a_closed_hub_refuses_to_publish() -> None:
    hub = InProcessHub()
    await hub.aclose()
    with pytest.raises(PublishError):
        await hub.publish(_envelopes(1))
    with pytest.raises(RuntimeError):
        hub.subscribe()
