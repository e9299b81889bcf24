"""What every publisher/subscriber adapter must do, checked the same way for each broker.

An adapter's test module builds a ``BrokerUnderTest`` for its real broker and calls each
``check_*`` coroutine from a test of its own (so a failure names the broker and the check).
The checks never sleep for a fixed time: they wait for deliveries with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from ledgerd.kernel.money import Asset
from ledgerd.kernel.result import Ok
from ledgerd.ledger.application.create_ledger import CreateLedger
from ledgerd.ledger.application.open_account import OpenAccount
from ledgerd.ledger.application.post_transfers import PostTransfers
from ledgerd.ledger.domain.model import AccountFlags
from ledgerd.ledger.domain.requests import LegRequest, TransferRequest
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork
from ledgerd.platform.messaging.consumer import Consumer
from ledgerd.platform.messaging.consumer import log as consumer_log
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.ports import (
    BrokerUnavailableError,
    Delivery,
    Publisher,
    Subscriber,
)
from ledgerd.platform.outbox.relay import OutboxRelay, RelayOptions
from ledgerd.platform.outbox.store import OutboxStore
from tests.integration.conftest import LedgerApp, open_ledger_app
from tests.integration.outbox.read_model import create_read_model, project, projected, stored

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
    - ``outage_transfers``: how many transfers the outbox check posts during the outage (a
      multiple of 100); fewer only where an emulator's own cost grows with its backlog.
    """

    name: str
    publisher: Callable[[], Awaitable[Publisher]]
    subscriber: Callable[[str], Awaitable[Subscriber]]
    publish_raw: Callable[[bytes, Mapping[str, str]], Awaitable[None]]
    outage: Callable[[], AbstractAsyncContextManager[None]]
    outage_transfers: int = 1000


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


async def check_a_malformed_message_is_reported_and_skipped(
    broker: BrokerUnderTest, database_url: str
) -> None:
    """A message that is not an event: the consumer logs why, acks it, and goes on."""
    subscriber = await broker.subscriber(f"malformed-{uuid.uuid4().hex[:8]}")
    publisher = await broker.publisher()
    good = envelopes("L1", 3)
    handled: list[Envelope] = []

    async def handle(envelope: Envelope) -> None:
        handled.append(envelope)

    try:
        async with open_ledger_app(database_url) as app:
            consumer = Consumer(subscriber, "fussy", handle, SqlAlchemyUnitOfWork(app.engine))
            stop = asyncio.Event()
            records = _Recorder(consumer_log)
            consuming = asyncio.create_task(consumer.run(stop))
            try:
                await broker.publish_raw(b"\x00not an event", {"content-type": "text/plain"})
                await publisher.publish(good)
                async with asyncio.timeout(DELIVERY_WAIT_S):
                    await consumer.progress.wait(lambda: len(handled) >= len(good))
            finally:
                stop.set()
                await consuming
                records.detach()
    finally:
        await publisher.aclose()
        await subscriber.aclose()
    assert handled == good  # in order, byte for byte: the bad message stopped nothing
    assert (consumer.stats.malformed, consumer.stats.failed) == (1, 0)
    [record] = [r for r in records.records if r.getMessage().startswith("consumer fussy rejected")]
    assert record.levelno == logging.WARNING
    reason = record.getMessage().removeprefix("consumer fussy rejected a message: ")
    assert len(reason) > len("(no reason given)")  # a reason a person can act on


class _Recorder(logging.Handler):
    """Keeps what ``logger`` emits until ``detach()``."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._logger = logger
        logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def detach(self) -> None:
        self._logger.removeHandler(self)


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


# --- the outbox through this broker, end to end -------------------------------------------


OUTBOX_CHECK_WAIT_S = 240.0  # a bound for the whole check to fail rather than hang
_RELAY_OPTIONS = RelayOptions(batch_size=100, backoff_base_s=0.05, backoff_max_s=0.5)


async def check_the_outbox_rides_out_an_outage(broker: BrokerUnderTest, database_url: str) -> None:
    """The issue's fault test: the broker is down while transfers are posted (1,000 by default).

    Every transfer succeeds and the outbox holds their events; when the broker is back the
    relay publishes them all, and a downstream service (a ``Consumer`` with its inbox,
    feeding a read model of balances) handles each exactly once, each ledger in order, and
    its read model equals the ledger's balances. Then a relay dies after the broker took half
    a batch: its successor publishes the batch again, and still each event is handled once,
    in order, and the read model converges.
    """
    ledgers = tuple(f"{side}-{uuid.uuid4().hex[:8]}" for side in ("east", "west"))
    subscriber = await broker.subscriber(f"outbox-{uuid.uuid4().hex[:8]}")
    publisher = await broker.publisher()
    try:
        async with (
            asyncio.timeout(OUTBOX_CHECK_WAIT_S),
            open_ledger_app(database_url, settings={"batching": False}) as app,
            _Downstream.running(app, subscriber, ledgers) as downstream,
        ):
            store = OutboxStore(SqlAlchemyUnitOfWork(app.engine))
            for ledger in ledgers:
                await _open(app, ledger)
            relay = OutboxRelay(store, publisher, options=_RELAY_OPTIONS)
            stop = asyncio.Event()
            relaying: asyncio.Task[None] | None = None
            try:
                async with broker.outage():
                    relaying = asyncio.create_task(relay.run(stop))  # trying all along
                    for start in range(0, broker.outage_transfers, 100):
                        for ledger in ledgers:
                            outcome = await app.post(_payments(ledger, start, 50))
                            assert all(isinstance(result, Ok) for result in outcome)
                    held = sum(lag.unpublished for lag in await store.lag())
                    assert held == broker.outage_transfers + 2 * 3  # and the ledgers' own events
                    assert relay.stats.published == 0
                await _until_published(relay, store)
            finally:
                stop.set()
                if relaying is not None:
                    await relaying
            await downstream.converged(app, store)

            # A relay dies with half a batch on the broker and its claim not recorded.
            for ledger in ledgers:
                await app.post(_payments(ledger, broker.outage_transfers, 20))
            dying = _DiesHalfWay(publisher)
            doomed = asyncio.create_task(OutboxRelay(store, dying, options=_RELAY_OPTIONS).sweep())
            async with asyncio.timeout(DELIVERY_WAIT_S):
                await dying.half_sent.wait()
            doomed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await doomed
            await _relay_until_published(
                OutboxRelay(store, publisher, options=_RELAY_OPTIONS), store
            )
            await downstream.converged(app, store)
    finally:
        await publisher.aclose()
        await subscriber.aclose()


class _Downstream:
    """A service downstream of the broker: a ``Consumer`` whose handler feeds a read model.

    It handles only the events of this check's ledgers (a shared broker may hold other
    checks' leftovers) and records them in the order it handled them.
    """

    def __init__(self, app: LedgerApp, subscriber: Subscriber, ledgers: Sequence[str]) -> None:
        self._ledgers = frozenset(ledgers)
        self.handled: list[Envelope] = []
        self.consumer = Consumer(
            subscriber, "read-model", self._handle, SqlAlchemyUnitOfWork(app.engine)
        )

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, app: LedgerApp, subscriber: Subscriber, ledgers: Sequence[str]
    ) -> AsyncIterator[_Downstream]:
        await create_read_model(app.engine)
        downstream = cls(app, subscriber, ledgers)
        stop = asyncio.Event()
        consuming = asyncio.create_task(downstream.consumer.run(stop))
        try:
            yield downstream
        finally:
            stop.set()
            await consuming

    async def _handle(self, envelope: Envelope) -> None:
        if envelope.ledger in self._ledgers:
            await project(envelope)
            self.handled.append(envelope)

    async def converged(self, app: LedgerApp, store: OutboxStore) -> None:
        """Every event of the outbox handled once, in order; the read model = the ledger."""
        expected = [e for ledger in sorted(self._ledgers) for e in await _all_events(store, ledger)]
        wanted = {envelope.id for envelope in expected}
        progress = self.consumer.progress
        while True:  # fails when deliveries stop coming, not on a slow broker's total time
            version = progress.version
            if wanted <= {envelope.id for envelope in self.handled}:
                break
            try:
                async with asyncio.timeout(DELIVERY_WAIT_S):
                    await progress.changed(since=version)
            except TimeoutError:
                pytest.fail(
                    f"the consumer stopped short: {len(self.handled)} of {len(expected)} "
                    f"events handled, stats {self.consumer.stats}"
                )
        assert len(self.handled) == len(expected)  # the inbox kept out every copy
        assert sorted(self.handled, key=_by_ledger_and_sequence) == sorted(
            expected, key=_by_ledger_and_sequence
        )  # every attribute and the exact bytes
        per_ledger: dict[str, list[int]] = {}
        for envelope in self.handled:
            per_ledger.setdefault(envelope.ledger, []).append(envelope.sequence)
        disorder = {
            ledger: _first_disorder(sequences)
            for ledger, sequences in per_ledger.items()
            if sequences != list(range(1, len(sequences) + 1))
        }
        assert not disorder, f"handled out of order: {disorder}"
        model = await projected(app.engine)
        assert set(model) == {
            (ledger, account) for ledger in self._ledgers for account in ("bank", "alice")
        }
        assert model == await stored(app.queries, set(model))


def _first_disorder(sequences: Sequence[int]) -> str:
    """Where a ledger's handling order first departs from 1, 2, 3, ... (for the failure)."""
    position = next(i for i, sequence in enumerate(sequences, 1) if sequence != i)
    return f"at position {position}: {list(sequences[max(0, position - 4) : position + 6])}"


def _by_ledger_and_sequence(envelope: Envelope) -> tuple[str, int]:
    return envelope.ledger, envelope.sequence


async def _open(app: LedgerApp, ledger: str) -> None:
    await app.create_ledger(CreateLedger(ledger, ledger))
    for account in ("bank", "alice"):
        await app.open_account(OpenAccount(ledger, account, Asset("USD", 2), AccountFlags()))


def _payments(ledger: str, start: int, count: int) -> PostTransfers:
    return PostTransfers(
        ledger,
        [
            TransferRequest(f"{ledger}-{n}", (LegRequest("bank", "alice", 1 + n % 7),))
            for n in range(start, start + count)
        ],
    )


async def _all_events(store: OutboxStore, ledger: str) -> list[Envelope]:
    events: list[Envelope] = []
    while chunk := await store.read(ledger, after=len(events)):
        events += chunk
    return events


async def _until_published(relay: OutboxRelay, store: OutboxStore) -> None:
    """Wait (the running relay backs off while the broker comes back) for an empty outbox."""
    async with asyncio.timeout(OUTAGE_PUBLISH_WAIT_S * 4):
        while sum(lag.unpublished for lag in await store.lag()):
            await relay.sweeps.changed(since=relay.sweeps.version)


async def _relay_until_published(relay: OutboxRelay, store: OutboxStore) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:
        await _until_published(relay, store)
    finally:
        stop.set()
        await running


class _DiesHalfWay:
    """A relay's last moments: half of its batch reaches the broker, then it hangs."""

    def __init__(self, inner: Publisher) -> None:
        self._inner = inner
        self.half_sent = asyncio.Event()

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        await self._inner.publish(envelopes[: len(envelopes) // 2])
        self.half_sent.set()
        await asyncio.Event().wait()  # until cancelled

    async def aclose(self) -> None:
        return None
