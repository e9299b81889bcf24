"""What every publisher/subscriber adapter must do, checked the same way for each broker.

An adapter's test module builds a ``BrokerUnderTest`` for its real broker and calls each
``check_*`` coroutine from a test of its own (so a failure names the broker and the check).
The checks never sleep for a fixed time: they wait for deliveries with a deadline.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.ports import (
    BrokerUnavailableError,
    Delivery,
    Publisher,
    Subscriber,
)

# Bounds for a hung broker to fail a test instead of stalling it; not measurements.
DELIVERY_WAIT_S = 30.0
OUTAGE_PUBLISH_WAIT_S = 30.0


@dataclass
class BrokerUnderTest:
    """One real broker and the adapter's way to reach it.

    - ``publisher()``: a fresh publisher (closed by the check).
    - ``subscriber(group)``: a fresh subscriber (``group``: a consumer group / durable
      consumer name unique to the check, for brokers that keep consumer state). It must
      receive everything this broker's publishers publish after it was created (the checks
      create it first, then publish); what it receives beyond that (an earlier check's
      leftovers) is ignored.
    - ``publish_raw(body, headers)``: put a message on the broker behind the adapter's back,
      the way a foreign or broken producer would.
    - ``outage()``: while inside, the broker cannot be reached (stopped, or cut off by a
      proxy); on leaving it is reachable again with everything it had accepted.
    """

    name: str
    publisher: Callable[[], Awaitable[Publisher]]
    subscriber: Callable[[str], Awaitable[Subscriber]]
    publish_raw: Callable[[bytes, Mapping[str, str]], Awaitable[None]]
    outage: Callable[[], AbstractAsyncContextManager[None]]


def envelopes(ledger: str, count: int, *, first: int = 1) -> list[Envelope]:
    """``count`` events of ``ledger`` with sequences from ``first``, distinct payloads."""
    return [
        Envelope(
            id=str(uuid.uuid4()),
            source=f"/ledgerd/ledgers/{ledger}",
            type="ledgerd.v1.TransferPosted",
            subject=f"transfers/t{sequence}",
            time=datetime(2030, 1, 2, 3, 4, 5, sequence, tzinfo=UTC),
            ledger=ledger,
            sequence=sequence,
            data=f"{ledger}:{sequence}".encode() + bytes([0, 255, sequence % 256]),
        )
        for sequence in range(first, first + count)
    ]


def interleaved(*streams: Sequence[Envelope]) -> list[Envelope]:
    """Round-robin over the streams: each ledger's order kept, ledgers mixed."""
    merged: list[Envelope] = []
    for index in range(max(len(stream) for stream in streams)):
        merged.extend(stream[index] for stream in streams if index < len(stream))
    return merged


@dataclass
class Collected:
    """What a consumer saw: every delivery, and the envelopes once each (the inbox's view)."""

    deliveries: int = 0
    malformed: list[str] = field(default_factory=list)
    unique: dict[str, Envelope] = field(default_factory=dict)
    order: list[Envelope] = field(default_factory=list)  # first deliveries, in arrival order

    def per_ledger(self) -> dict[str, list[int]]:
        sequences: dict[str, list[int]] = {}
        for envelope in self.order:
            sequences.setdefault(envelope.ledger, []).append(envelope.sequence)
        return sequences


async def collect(
    subscriber: Subscriber,
    until: Callable[[Collected], bool],
    *,
    collected: Collected | None = None,
    nack_first: frozenset[str] = frozenset(),
) -> Collected:
    """Ack deliveries (nack once those in ``nack_first``) until ``until`` holds, or fail."""
    seen = collected if collected is not None else Collected()
    nacked: set[str] = set()
    iterator: AsyncIterator[Delivery] = subscriber.deliveries()
    try:
        async with asyncio.timeout(DELIVERY_WAIT_S):
            while not until(seen):
                delivery = await anext(iterator)
                seen.deliveries += 1
                if delivery.envelope is None:
                    seen.malformed.append(delivery.problem or "(no reason given)")
                    await delivery.ack()
                    continue
                envelope = delivery.envelope
                if envelope.id in nack_first and envelope.id not in nacked:
                    nacked.add(envelope.id)
                    await delivery.nack()
                    continue
                if envelope.id not in seen.unique:
                    seen.unique[envelope.id] = envelope
                    seen.order.append(envelope)
                await delivery.ack()
    except TimeoutError:
        pytest.fail(
            f"deliveries stopped coming: {len(seen.unique)} distinct envelopes, "
            f"{seen.deliveries} deliveries, malformed {seen.malformed}"
        )
    finally:
        closer = getattr(iterator, "aclose", None)
        if closer is not None:
            await closer()
    return seen


def _all_of(expected: Sequence[Envelope]) -> Callable[[Collected], bool]:
    wanted = {envelope.id for envelope in expected}
    return lambda seen: wanted <= seen.unique.keys()


def assert_delivered_in_order(seen: Collected, expected: Sequence[Envelope]) -> None:
    """Each envelope once (after deduplication), byte for byte, each ledger in order."""
    by_id = {envelope.id: envelope for envelope in expected}
    assert set(seen.unique) >= set(by_id)
    for envelope_id, envelope in by_id.items():
        assert seen.unique[envelope_id] == envelope  # every attribute and the exact bytes
    wanted: dict[str, list[int]] = {}
    for envelope in expected:
        wanted.setdefault(envelope.ledger, []).append(envelope.sequence)
    got = {ledger: sequences for ledger, sequences in seen.per_ledger().items() if ledger in wanted}
    assert got == wanted


async def check_delivers_everything_in_order_per_ledger(broker: BrokerUnderTest) -> None:
    subscriber = await broker.subscriber(f"order-{uuid.uuid4().hex[:8]}")
    publisher = await broker.publisher()
    expected = interleaved(envelopes("L1", 60), envelopes("L2", 45), envelopes("L3", 30))
    try:
        for start in range(0, len(expected), 7):  # batches of 7 that straddle ledgers
            await publisher.publish(expected[start : start + 7])
        seen = await collect(subscriber, _all_of(expected))
    finally:
        await publisher.aclose()
        await subscriber.aclose()
    assert_delivered_in_order(seen, expected)


async def check_publishing_again_is_harmless(broker: BrokerUnderTest) -> None:
    """The relay re-sends what it could not confirm: the consumer still sees each once."""
    subscriber = await broker.subscriber(f"again-{uuid.uuid4().hex[:8]}")
    publisher = await broker.publisher()
    first = envelopes("L1", 20)
    try:
        await publisher.publish(first)
        await publisher.publish(first[10:])  # as after a failure half-way through
        later = envelopes("L1", 5, first=21)
        await publisher.publish(later)
        seen = await collect(subscriber, _all_of(first + later))
    finally:
        await publisher.aclose()
        await subscriber.aclose()
    assert_delivered_in_order(seen, first + later)


async def check_a_malformed_message_is_reported_and_skipped(broker: BrokerUnderTest) -> None:
    subscriber = await broker.subscriber(f"malformed-{uuid.uuid4().hex[:8]}")
    publisher = await broker.publisher()
    good = envelopes("L1", 3)
    try:
        await broker.publish_raw(b"\x00not an event", {"content-type": "text/plain"})
        await publisher.publish(good)
        seen = await collect(subscriber, _all_of(good))
    finally:
        await publisher.aclose()
        await subscriber.aclose()
    assert len(seen.malformed) == 1, seen.malformed
    assert seen.malformed[0]  # a reason a person can read in the log
    assert_delivered_in_order(seen, good)


async def check_a_nacked_message_comes_again(broker: BrokerUnderTest) -> None:
    subscriber = await broker.subscriber(f"nack-{uuid.uuid4().hex[:8]}")
    publisher = await broker.publisher()
    sent = envelopes("L1", 3)
    try:
        await publisher.publish(sent)
        seen = await collect(subscriber, _all_of(sent), nack_first=frozenset({sent[1].id}))
    finally:
        await publisher.aclose()
        await subscriber.aclose()
    assert set(seen.unique) == {envelope.id for envelope in sent}
    assert seen.deliveries >= len(sent) + 1


async def check_an_outage_fails_publishing_then_it_recovers(broker: BrokerUnderTest) -> None:
    """An outage fails ``publish`` in bounded time, loses nothing, and passes.

    Unreachable: ``publish`` raises BrokerUnavailableError; nothing accepted before is lost;
    reachable again: the same publisher works once more.
    """
    subscriber = await broker.subscriber(f"outage-{uuid.uuid4().hex[:8]}")
    publisher = await broker.publisher()
    before, during = envelopes("L1", 5), envelopes("L1", 5, first=6)
    after = envelopes("L1", 5, first=11)
    try:
        await publisher.publish(before)
        async with broker.outage():
            with pytest.raises(BrokerUnavailableError):
                async with asyncio.timeout(OUTAGE_PUBLISH_WAIT_S):
                    await publisher.publish(during)
        await _publish_until_accepted(publisher, during + after)
        seen = await collect(subscriber, _all_of(before + during + after))
    finally:
        await publisher.aclose()
        await subscriber.aclose()
    assert_delivered_in_order(seen, before + during + after)


async def _publish_until_accepted(publisher: Publisher, batch: Sequence[Envelope]) -> None:
    """The relay's behaviour: retry the same batch while the broker is coming back."""
    async with asyncio.timeout(OUTAGE_PUBLISH_WAIT_S):
        while True:
            try:
                await publisher.publish(batch)
            except BrokerUnavailableError:
                await asyncio.sleep(0.2)
            else:
                return
