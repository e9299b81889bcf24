"""The Redis Streams adapter against a real Redis: the broker contract, and what is its own.

Everything runs on the machine's Redis (127.0.0.1:6379, or ``LEDGERD_TEST_REDIS_URL``), each
test on a stream key of its own, deleted afterwards with its deduplication keys. The outage
check reaches Redis through a ``TcpProxy`` it cuts, since the shared server cannot be stopped.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio
import redis.exceptions
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot
from redis.typing import EncodableT, FieldT

from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.ports import (
    BrokerUnavailableError,
    Publisher,
    PublishError,
    Subscriber,
)
from ledgerd.platform.messaging.redis_streams import (
    DATA_FIELD,
    RedisStreamsPublisher,
    RedisStreamsSubscriber,
    dedupe_key,
)
from tests.conftest import service_unavailable
from tests.fakes.tcp_proxy import TcpProxy
from tests.integration.messaging.contract import (
    BrokerUnderTest,
    Collected,
    assert_delivered_in_order,
    check_a_malformed_message_is_reported_and_skipped,
    check_a_nacked_message_comes_again,
    check_an_outage_fails_publishing_then_it_recovers,
    check_delivers_everything_in_order_per_ledger,
    check_publishing_again_is_harmless,
    check_the_outbox_rides_out_an_outage,
    collect,
    envelopes,
)

# The shared server (the machine's, unless LEDGERD_TEST_REDIS_URL names another).
SHARED_REDIS_URL = os.environ.get("LEDGERD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DEDUPE_TTL_S = 300
# Far beyond any deadline here: a nacked entry must come again through the nack itself,
# not because it looked abandoned.
ABANDONED_AFTER_S = 120.0
SOCKET_TIMEOUT_S = 2.0
BLOCK_S = 0.2
# Within this, an entry that is due again must have come (the contract waits 30 s).
SOON_S = 10.0


@dataclass(frozen=True)
class RedisBroker:
    url: str
    stream: str

    async def publisher(self, *, max_length: int | None = None) -> RedisStreamsPublisher:
        return await RedisStreamsPublisher.connect(
            self.url,
            stream=self.stream,
            dedupe_ttl_s=DEDUPE_TTL_S,
            max_length=max_length,
            socket_timeout_s=SOCKET_TIMEOUT_S,
            connect_timeout_s=SOCKET_TIMEOUT_S,
        )

    async def subscriber(
        self, group: str, *, abandoned_after_s: float = ABANDONED_AFTER_S
    ) -> RedisStreamsSubscriber:
        return await RedisStreamsSubscriber.connect(
            self.url,
            group,
            stream=self.stream,
            block_s=BLOCK_S,
            abandoned_after_s=abandoned_after_s,
            socket_timeout_s=SOCKET_TIMEOUT_S,
            connect_timeout_s=SOCKET_TIMEOUT_S,
        )

    async def publish_raw(self, body: bytes, headers: Mapping[str, str]) -> None:
        client = redis.asyncio.Redis.from_url(SHARED_REDIS_URL)
        fields: dict[FieldT, EncodableT] = dict(headers.items())
        fields[DATA_FIELD] = body
        try:
            await client.xadd(self.stream, fields)
        finally:
            await client.aclose()

    def under_test(self, proxy: TcpProxy | None = None) -> BrokerUnderTest:
        async def publisher() -> Publisher:
            return await self.publisher()

        async def subscriber(group: str) -> Subscriber:
            return await self.subscriber(group)

        def outage() -> AbstractAsyncContextManager[None]:
            if proxy is None:
                pytest.fail("the shared Redis cannot be stopped; the outage check uses a proxy")
            return proxy.outage()

        return BrokerUnderTest(
            name="redis-streams",
            publisher=publisher,
            subscriber=subscriber,
            publish_raw=self.publish_raw,
            outage=outage,
        )


@pytest.fixture
async def admin() -> AsyncIterator[redis.asyncio.Redis]:
    """A plain client of the shared Redis, for setting up and looking at what the adapter did."""
    client = redis.asyncio.Redis.from_url(
        SHARED_REDIS_URL, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S
    )
    try:
        await client.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        await client.aclose()
        service_unavailable(f"no Redis at {SHARED_REDIS_URL}: {type(error).__name__}: {error}")
    yield client
    await client.aclose()


@pytest.fixture
async def stream(admin: redis.asyncio.Redis) -> AsyncIterator[str]:
    """A stream key of this test's own; it and its deduplication keys are deleted after."""
    key = f"ledgerd:test:{uuid.uuid4().hex[:12]}:events"
    yield key
    marks = [mark async for mark in admin.scan_iter(match=dedupe_key(key, "*"), count=1000)]
    await admin.delete(key, *marks)


@pytest.fixture
def shared_redis(stream: str) -> RedisBroker:
    return RedisBroker(SHARED_REDIS_URL, stream)


@pytest.fixture
async def proxy(admin: redis.asyncio.Redis) -> AsyncIterator[TcpProxy]:
    del admin  # only there to skip (or fail) when Redis is not running
    target = urlsplit(SHARED_REDIS_URL)
    cuttable = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await cuttable.start()
    yield cuttable
    await cuttable.aclose()


def _through(proxy: TcpProxy) -> str:
    """The shared Redis's URL, by way of ``proxy``."""
    return urlunsplit(urlsplit(SHARED_REDIS_URL)._replace(netloc=proxy.address))


# --- the contract ----------------------------------------------------------------------------


async def test_delivers_everything_in_order_per_ledger(shared_redis: RedisBroker) -> None:
    await check_delivers_everything_in_order_per_ledger(shared_redis.under_test())


async def test_publishing_again_is_harmless(shared_redis: RedisBroker) -> None:
    await check_publishing_again_is_harmless(shared_redis.under_test())


async def test_a_malformed_message_is_reported_and_skipped(
    shared_redis: RedisBroker, sqlite_url: str
) -> None:
    await check_a_malformed_message_is_reported_and_skipped(shared_redis.under_test(), sqlite_url)


async def test_a_nacked_message_comes_again(shared_redis: RedisBroker) -> None:
    await check_a_nacked_message_comes_again(shared_redis.under_test())


async def test_an_outage_fails_publishing_then_it_recovers(stream: str, proxy: TcpProxy) -> None:
    broker = RedisBroker(_through(proxy), stream)
    await check_an_outage_fails_publishing_then_it_recovers(broker.under_test(proxy))


async def test_the_outbox_rides_out_an_outage(
    stream: str, proxy: TcpProxy, sqlite_url: str
) -> None:
    broker = RedisBroker(_through(proxy), stream)
    await check_the_outbox_rides_out_an_outage(broker.under_test(proxy), sqlite_url)


# --- this adapter ----------------------------------------------------------------------------


async def _receive(subscriber: Subscriber, expected: list[Envelope]) -> Collected:
    wanted = {envelope.id for envelope in expected}
    try:
        return await collect(subscriber, lambda seen: wanted <= seen.unique.keys())
    finally:
        await subscriber.aclose()


async def test_publishing_the_same_ids_again_appends_nothing(
    shared_redis: RedisBroker, admin: redis.asyncio.Redis
) -> None:
    publisher = await shared_redis.publisher()
    sent = envelopes("L1", 5)
    later = envelopes("L1", 1, first=6)
    try:
        await publisher.publish(sent)
        assert await admin.xlen(shared_redis.stream) == 5
        await publisher.publish(sent)
        await publisher.publish([sent[2], *later])  # one old, one new
    finally:
        await publisher.aclose()

    assert await admin.xlen(shared_redis.stream) == 6
    entries: Any = await admin.xrange(shared_redis.stream)
    ids = [fields[b"ce-id"].decode() for _, fields in entries]
    assert ids == [envelope.id for envelope in [*sent, *later]]
    ttl = await admin.ttl(dedupe_key(shared_redis.stream, sent[0].id))
    assert 0 < ttl <= DEDUPE_TTL_S  # the marks go away on their own


async def test_a_failed_append_leaves_no_duplicate_mark(
    shared_redis: RedisBroker, admin: redis.asyncio.Redis
) -> None:
    await admin.set(shared_redis.stream, "not a stream")  # XADD fails: WRONGTYPE
    publisher = await shared_redis.publisher()
    sent = envelopes("L1", 3)
    try:
        with pytest.raises(PublishError, match="WRONGTYPE"):
            await publisher.publish(sent)
        assert not await admin.exists(dedupe_key(shared_redis.stream, sent[0].id))

        await admin.delete(shared_redis.stream)
        await publisher.publish(sent)  # the retry is not taken for a duplicate
    finally:
        await publisher.aclose()
    assert await admin.xlen(shared_redis.stream) == 3


async def test_entries_a_consumer_abandoned_go_to_another(shared_redis: RedisBroker) -> None:
    group = "abandoned"
    sent = envelopes("L1", 3)
    first = await shared_redis.subscriber(group, abandoned_after_s=0.3)
    publisher = await shared_redis.publisher()
    try:
        await publisher.publish(sent)
    finally:
        await publisher.aclose()
    iterator = first.deliveries()
    try:
        taken = [await anext(iterator) for _ in sent]  # delivered, never settled
    finally:
        await iterator.aclose()
        await first.aclose()  # as a consumer that died would
    assert [delivery.envelope for delivery in taken] == sent

    second = await shared_redis.subscriber(group, abandoned_after_s=0.3)
    async with asyncio.timeout(SOON_S):
        seen = await _receive(second, sent)
    assert_delivered_in_order(seen, sent)


async def test_a_subscriber_leaving_with_nothing_pending_leaves_no_consumer(
    shared_redis: RedisBroker, admin: redis.asyncio.Redis
) -> None:
    group = "tidy"
    subscriber = await shared_redis.subscriber(group)
    publisher = await shared_redis.publisher()
    sent = envelopes("L1", 2)
    try:
        await publisher.publish(sent)
    finally:
        await publisher.aclose()
    await _receive(subscriber, sent)  # acks everything, then closes
    assert await admin.xinfo_consumers(shared_redis.stream, group) == []


async def test_max_length_trims_the_stream(
    shared_redis: RedisBroker, admin: redis.asyncio.Redis
) -> None:
    publisher = await shared_redis.publisher(max_length=10)
    sent = envelopes("L1", 300)
    try:
        for start in range(0, len(sent), 50):
            await publisher.publish(sent[start : start + 50])
    finally:
        await publisher.aclose()
    # Approximate: Redis drops whole nodes (100 entries each by default), never below 10.
    assert 10 <= await admin.xlen(shared_redis.stream) < 300
    newest: Any = await admin.xrevrange(shared_redis.stream, count=1)
    last_id, last_fields = newest[0]
    assert last_id
    assert last_fields[b"ce-id"].decode() == sent[-1].id


async def test_an_entry_that_is_not_utf_8_is_reported(
    shared_redis: RedisBroker, admin: redis.asyncio.Redis
) -> None:
    subscriber = await shared_redis.subscriber("not-utf-8")
    (good,) = envelopes("L1", 1)
    (broken,) = envelopes("L2", 1)
    fields: dict[FieldT, EncodableT] = {
        f"ce-{name}": value for name, value in broken.attributes().items()
    }
    fields["ce-subject"] = b"\xff\xfe"
    fields[DATA_FIELD] = b"x"
    await admin.xadd(shared_redis.stream, fields)
    publisher = await shared_redis.publisher()
    try:
        await publisher.publish([good])
    finally:
        await publisher.aclose()
    seen = await _receive(subscriber, [good])
    assert len(seen.malformed) == 1
    assert "ce-subject is not UTF-8" in seen.malformed[0]


async def test_leaving_mid_batch_hands_the_rest_back_at_once(shared_redis: RedisBroker) -> None:
    group = "hand-back"
    sent = envelopes("L1", 5)
    first = await shared_redis.subscriber(group)  # abandoned_after_s: far beyond SOON_S
    publisher = await shared_redis.publisher()
    try:
        await publisher.publish(sent)
    finally:
        await publisher.aclose()
    iterator = first.deliveries()
    try:
        delivery = await anext(iterator)  # the read took all five; four are left in hand
        await delivery.ack()
    finally:
        await iterator.aclose()
        await first.aclose()
    assert delivery.envelope == sent[0]

    second = await shared_redis.subscriber(group)
    async with asyncio.timeout(SOON_S):  # not abandoned_after: they were nacked on the way out
        seen = await _receive(second, sent[1:])
    assert_delivered_in_order(seen, sent[1:])


@given(st.text(max_size=40))
def test_a_dedupe_key_shares_its_stream_s_hash_slot(stream: str) -> None:
    try:
        mark = dedupe_key(stream, "an-event-id")
    except ValueError:
        assert not stream or "}" in stream  # refused only when no key shares the slot for sure
        return
    assert key_slot(mark.encode()) == key_slot(stream.encode())


async def test_connecting_to_a_server_that_is_down_fails_in_bounded_time(
    proxy: TcpProxy,
) -> None:
    nowhere = _through(proxy)
    await proxy.cut()
    async with asyncio.timeout(SOON_S):
        with pytest.raises(BrokerUnavailableError, match="cannot connect"):
            await RedisStreamsPublisher.connect(nowhere)
        with pytest.raises(BrokerUnavailableError, match="cannot connect"):
            await RedisStreamsSubscriber.connect(nowhere, "g")
