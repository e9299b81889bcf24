"""LEDGERD_EVENTS_FORMAT=json: the same events, their payloads in protobuf's JSON mapping.

An app set to ``json`` relays every kind of event to the in-process hub (wired by the
composition root) and to real brokers (NATS JetStream and Redis Streams, binary content
mode, each test on a stream of its own); what a consumer receives decodes to the very
messages the outbox holds as protobuf, with every other attribute as written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

import nats
import nats.errors
import nats.js.errors
import pytest
import redis.asyncio
import redis.exceptions

from ledgerd.ledger.application.replay_ledger import ReplayLedger, ReplayLedgerHandler
from ledgerd.ledger.entrypoints.cli.report import replay_summary
from ledgerd.main.publishers import in_events_format
from ledgerd.main.settings import Settings
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.hub import InProcessHub
from ledgerd.platform.messaging.nats import NatsPublisher, NatsSubscriber
from ledgerd.platform.messaging.ports import Publisher, Subscriber
from ledgerd.platform.messaging.redis_streams import (
    RedisStreamsPublisher,
    RedisStreamsSubscriber,
    dedupe_key,
)
from ledgerd.platform.outbox.relay import OutboxRelay
from ledgerd.platform.outbox.store import OutboxStore
from ledgerd.v1 import events_pb2 as events_pb
from tests.conftest import service_unavailable
from tests.integration.conftest import LedgerApp, open_ledger_app
from tests.integration.outbox.helpers import (
    DELIVERY_WAIT_S,
    EVERY_CHANGE,
    make_every_change,
    payloads,
    receive,
)

SHARED_NATS_URL = os.environ.get("LEDGERD_TEST_NATS_URL", "nats://127.0.0.1:4222")
SHARED_REDIS_URL = os.environ.get("LEDGERD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CONNECT_TIMEOUT_S = 2.0
JSON_APP = {"events_format": "json"}
LEDGER = "books"


@dataclass(frozen=True)
class Broker:
    """A real broker on names of this test's own."""

    publisher: Callable[[], Awaitable[Publisher]]
    subscriber: Callable[[str], Awaitable[Subscriber]]


async def _stored(app: LedgerApp) -> list[Envelope]:
    return await (await app.container.get(OutboxStore)).read(LEDGER)


def _assert_the_same_events_in_json(
    received: Sequence[Envelope], stored: Sequence[Envelope]
) -> None:
    assert [envelope.type for envelope in received] == EVERY_CHANGE
    # The outbox still holds protobuf; only what went out is JSON.
    assert {envelope.datacontenttype for envelope in stored} == {"application/protobuf"}
    assert {envelope.datacontenttype for envelope in received} == {"application/json"}
    for got, kept in zip(received, stored, strict=True):
        # id, source, type, subject, time, partition key and sequence exactly as written.
        assert replace(got, data=kept.data, datacontenttype=kept.datacontenttype) == kept
        assert isinstance(json.loads(got.data), dict)
    from_json, from_protobuf = payloads(received), payloads(stored)
    assert from_json == from_protobuf
    # Equal and not empty: the reversal names the transfer it reverses, with its entries.
    posted = from_json[EVERY_CHANGE.index("ledgerd.v1.TransferPosted")]
    reversal = from_json[EVERY_CHANGE.index("ledgerd.v1.TransferReversed")]
    assert isinstance(posted, events_pb.TransferPosted)
    assert isinstance(reversal, events_pb.TransferReversed)
    assert reversal.transfer.target_id == posted.transfer.id != ""
    assert [entry.amount for entry in reversal.entries] == [500, 500]


async def test_an_app_set_to_json_relays_json_payloads_to_the_hub(database_url: str) -> None:
    async with open_ledger_app(database_url, settings=JSON_APP) as app:
        relay = await app.container.get(OutboxRelay)  # its publisher as the container wires it
        subscription = (await app.container.get(InProcessHub)).subscribe()
        await make_every_change(app, LEDGER)

        assert await relay.sweep() == len(EVERY_CHANGE)
        received = await receive(subscription, len(EVERY_CHANGE))

        _assert_the_same_events_in_json(received, await _stored(app))
        # Replay reads the outbox, which the format leaves alone.
        replay = await app.container.get(ReplayLedgerHandler)
        report = await replay(ReplayLedger(LEDGER))
        assert report.ok, replay_summary(report)


async def _relay_and_consume(broker: Broker, database_url: str) -> None:
    subscriber = await broker.subscriber(f"json-{uuid.uuid4().hex[:8]}")
    try:
        async with open_ledger_app(database_url, settings=JSON_APP) as app:
            # The broker adapter is made here, on the test's own names, and put in the app's
            # payload format the way the composition root does.
            settings = await app.container.get(Settings)
            publisher = in_events_format(settings, await broker.publisher())
            try:
                relay = OutboxRelay(await app.container.get(OutboxStore), publisher)
                await make_every_change(app, LEDGER)
                assert await relay.sweep() == len(EVERY_CHANGE)
            finally:
                await publisher.aclose()
            received = await _consume(subscriber, len(EVERY_CHANGE))
            _assert_the_same_events_in_json(received, await _stored(app))
    finally:
        await subscriber.aclose()


async def _consume(subscriber: Subscriber, count: int) -> list[Envelope]:
    """The first ``count`` distinct events, acknowledged, as a deduplicating consumer sees them."""
    received: dict[str, Envelope] = {}
    deliveries = subscriber.deliveries()
    try:
        async with asyncio.timeout(DELIVERY_WAIT_S):
            while len(received) < count:
                delivery = await anext(deliveries)
                assert delivery.envelope is not None, delivery.problem
                received.setdefault(delivery.envelope.id, delivery.envelope)
                await delivery.ack()
    finally:
        # The port promises an iterator; the adapters' are generators, closed to settle
        # anything fetched and not handed out.
        closer = getattr(deliveries, "aclose", None)
        if closer is not None:
            await closer()
    return list(received.values())


# --- NATS JetStream --------------------------------------------------------------------------


@pytest.fixture
async def nats_broker() -> AsyncIterator[Broker]:
    tag = uuid.uuid4().hex[:12]
    stream, prefix = f"LEDGERD_TEST_{tag.upper()}", f"ledgerd.test{tag}.events"
    try:
        admin = await nats.connect(
            SHARED_NATS_URL,
            connect_timeout=CONNECT_TIMEOUT_S,
            max_reconnect_attempts=1,
            reconnect_time_wait=0,
        )
    except (OSError, TimeoutError, nats.errors.Error) as error:
        service_unavailable(f"no NATS at {SHARED_NATS_URL}: {type(error).__name__}: {error}")
    try:
        try:
            await admin.jetstream(timeout=CONNECT_TIMEOUT_S).account_info()
        except (TimeoutError, nats.errors.Error) as error:
            service_unavailable(f"no JetStream at {SHARED_NATS_URL}: {error}")

        async def publisher() -> Publisher:
            return await NatsPublisher.connect(
                SHARED_NATS_URL, stream=stream, subject_prefix=prefix
            )

        async def subscriber(group: str) -> Subscriber:
            return await NatsSubscriber.connect(
                SHARED_NATS_URL, group, stream=stream, subject_prefix=prefix, fetch_wait_s=0.5
            )

        yield Broker(publisher, subscriber)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await admin.jetstream().delete_stream(stream)
    finally:
        await admin.close()


async def test_a_nats_consumer_reads_json_events_as_the_protobuf_ones(
    nats_broker: Broker, sqlite_url: str
) -> None:
    await _relay_and_consume(nats_broker, sqlite_url)


# --- Redis Streams ---------------------------------------------------------------------------


@pytest.fixture
async def redis_broker() -> AsyncIterator[Broker]:
    stream = f"ledgerd:test:{uuid.uuid4().hex[:12]}:events"
    admin = redis.asyncio.Redis.from_url(
        SHARED_REDIS_URL,
        socket_timeout=CONNECT_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
    )
    try:
        try:
            await admin.ping()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            service_unavailable(f"no Redis at {SHARED_REDIS_URL}: {type(error).__name__}: {error}")

        async def publisher() -> Publisher:
            return await RedisStreamsPublisher.connect(SHARED_REDIS_URL, stream=stream)

        async def subscriber(group: str) -> Subscriber:
            return await RedisStreamsSubscriber.connect(
                SHARED_REDIS_URL, group, stream=stream, block_s=0.2
            )

        yield Broker(publisher, subscriber)
        marks = [mark async for mark in admin.scan_iter(match=dedupe_key(stream, "*"))]
        await admin.delete(stream, *marks)
    finally:
        await admin.aclose()


async def test_a_redis_consumer_reads_json_events_as_the_protobuf_ones(
    redis_broker: Broker, sqlite_url: str
) -> None:
    await _relay_and_consume(redis_broker, sqlite_url)
