"""The RabbitMQ adapter against the machine's RabbitMQ: the contract, then its own mapping.

Every test declares an exchange and queues of its own (deleted afterwards), and reaches the
broker through a ``TcpProxy`` it can cut, since the broker is shared and cannot be stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.ports import BrokerUnavailableError, Delivery, EventRejectedError
from ledgerd.platform.messaging.rabbitmq import (
    BINDING_KEY,
    DEFAULT_MAX_MESSAGE_BYTES,
    RabbitMqPublisher,
    RabbitMqSubscriber,
    routing_key,
)
from tests.conftest import service_unavailable
from tests.fakes.tcp_proxy import TcpProxy
from tests.integration.messaging import contract
from tests.integration.messaging.contract import BrokerUnderTest, envelopes

URL_ENV = "LEDGERD_TEST_RABBITMQ_URL"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
# Short enough for an outage to fail a publish quickly, long enough for a loaded machine.
TIMEOUT_S = 2.0
WAIT_S = 10.0


@dataclass
class RabbitMq:
    """The broker as one test sees it: its own exchange, a proxy, and what to delete."""

    url: str
    proxy: TcpProxy
    admin: AbstractConnection
    channel: AbstractChannel
    exchange: str = field(default_factory=lambda: f"ledgerd.test.{uuid.uuid4().hex[:12]}")
    queues: list[str] = field(default_factory=list)

    @property
    def proxied_url(self) -> str:
        parts = urlsplit(self.url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@{self.proxy.address}" if credentials else self.proxy.address
        return parts._replace(netloc=netloc).geturl()

    def queue_name(self, group: str) -> str:
        name = f"{self.exchange}.{group}"
        self.queues.append(name)
        return name

    async def publisher(
        self, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ) -> RabbitMqPublisher:
        return await RabbitMqPublisher.connect(
            self.proxied_url,
            exchange=self.exchange,
            connect_timeout_s=TIMEOUT_S,
            publish_timeout_s=TIMEOUT_S,
            max_message_bytes=max_message_bytes,
        )

    async def subscriber(self, group: str) -> RabbitMqSubscriber:
        return await RabbitMqSubscriber.connect(
            self.proxied_url,
            self.queue_name(group),
            exchange=self.exchange,
            connect_timeout_s=TIMEOUT_S,
            reconnect_interval_s=0.2,
        )

    async def publish_raw(self, body: bytes, headers: Mapping[str, str]) -> None:
        message = aio_pika.Message(
            body,
            headers={name: value for name, value in headers.items() if name != "content-type"},
            content_type=headers.get("content-type"),
        )
        exchange = await self.channel.get_exchange(self.exchange)
        await exchange.publish(message, "ledger.raw", mandatory=True)

    async def bound_queue(self, binding: str = BINDING_KEY) -> aio_pika.abc.AbstractQueue:
        """A queue of the test's own bound to the exchange, read directly with ``get``."""
        queue = await self.channel.declare_queue(self.queue_name(uuid.uuid4().hex[:8]))
        await queue.bind(self.exchange, binding)
        return queue

    def broker(self) -> BrokerUnderTest:
        async def publisher() -> RabbitMqPublisher:
            return await self.publisher()

        return BrokerUnderTest(
            name="rabbitmq",
            publisher=publisher,
            subscriber=self.subscriber,
            publish_raw=self.publish_raw,
            outage=self.proxy.outage,
        )


@pytest.fixture
async def rabbitmq() -> AsyncIterator[RabbitMq]:
    url = os.environ.get(URL_ENV, "").strip() or DEFAULT_URL
    try:
        admin = await aio_pika.connect(url, timeout=TIMEOUT_S)
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as error:
        service_unavailable(f"no RabbitMQ at {URL_ENV}={url!r}: {type(error).__name__}: {error}")
    target = urlsplit(url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5672)
    await proxy.start()
    channel = await admin.channel()
    broker = RabbitMq(url=url, proxy=proxy, admin=admin, channel=channel)
    await channel.declare_exchange(broker.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    try:
        yield broker
    finally:
        for queue in broker.queues:
            await channel.queue_delete(queue)
        await channel.exchange_delete(broker.exchange)
        await admin.close()
        await proxy.aclose()


@pytest.fixture
def broker(rabbitmq: RabbitMq) -> BrokerUnderTest:
    return rabbitmq.broker()


# --- the contract ----------------------------------------------------------------------------


async def test_delivers_everything_in_order_per_ledger(broker: BrokerUnderTest) -> None:
    await contract.check_delivers_everything_in_order_per_ledger(broker)


async def test_publishing_again_is_harmless(broker: BrokerUnderTest) -> None:
    await contract.check_publishing_again_is_harmless(broker)


async def test_a_malformed_message_is_reported_and_skipped(
    broker: BrokerUnderTest, sqlite_url: str
) -> None:
    await contract.check_a_malformed_message_is_reported_and_skipped(broker, sqlite_url)


async def test_a_nacked_message_comes_again(broker: BrokerUnderTest) -> None:
    await contract.check_a_nacked_message_comes_again(broker)


async def test_an_outage_fails_publishing_then_it_recovers(broker: BrokerUnderTest) -> None:
    await contract.check_an_outage_fails_publishing_then_it_recovers(broker)


async def test_the_outbox_rides_out_an_outage(broker: BrokerUnderTest, sqlite_url: str) -> None:
    await contract.check_the_outbox_rides_out_an_outage(broker, sqlite_url)


# --- the mapping -----------------------------------------------------------------------------


async def _get(queue: aio_pika.abc.AbstractQueue) -> AbstractIncomingMessage:
    """The next message on ``queue``, waiting for it with a deadline."""
    async with asyncio.timeout(WAIT_S):
        while True:
            message = await queue.get(fail=False)
            if message is not None:
                await message.ack()
                return message
            await asyncio.sleep(0.02)


async def _publish(rabbitmq: RabbitMq, batch: list[Envelope]) -> None:
    publisher = await rabbitmq.publisher()
    try:
        await publisher.publish(batch)
    finally:
        await publisher.aclose()


async def test_a_message_carries_the_attributes_as_headers_and_the_id(rabbitmq: RabbitMq) -> None:
    queue = await rabbitmq.bound_queue()
    [envelope] = envelopes("acme.eur", 1)

    await _publish(rabbitmq, [envelope])

    message = await _get(queue)
    attributes = envelope.attributes()
    assert message.content_type == attributes.pop("datacontenttype") == "application/protobuf"
    assert message.headers == {f"cloudEvents_{name}": value for name, value in attributes.items()}
    assert message.message_id == envelope.id
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.routing_key == "ledger.acme_2Eeur"
    assert message.body == envelope.data


async def test_ledger_ids_with_separators_and_wildcards_route_to_their_own_key(
    rabbitmq: RabbitMq,
) -> None:
    ledgers = ["a.b", "a.c", "a.*", "#", "a_2Eb", "." * 100]  # the last one is hashed
    queues = {ledger: await rabbitmq.bound_queue(routing_key(ledger)) for ledger in ledgers}
    catch_all = await rabbitmq.bound_queue()

    await _publish(rabbitmq, [envelopes(ledger, 1)[0] for ledger in ledgers])

    for ledger, queue in queues.items():
        message = await _get(queue)
        assert message.headers["cloudEvents_partitionkey"] == ledger
        assert await queue.get(fail=False) is None, f"{ledger!r} got another ledger's event"
    caught = [(await _get(catch_all)).headers["cloudEvents_partitionkey"] for _ in ledgers]
    assert sorted(map(str, caught)) == sorted(ledgers)


def test_routing_keys_stay_one_word_and_fit() -> None:
    assert routing_key("acme-EUR-1") == "ledger.acme-EUR-1"
    assert routing_key("é") == "ledger._C3_A9"
    long_ids = ["." * 128, "." * 129]
    keys = [routing_key(ledger) for ledger in long_ids]
    assert all(len(key.encode()) <= 255 and key.count(".") == 1 for key in keys)
    assert keys[0] != keys[1]
    assert keys[0].startswith("ledger.=")


async def test_an_unroutable_event_is_logged_but_counts_as_published(
    rabbitmq: RabbitMq, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing is bound to the test's exchange: RabbitMQ returns the message.
    with caplog.at_level(logging.WARNING, logger="ledgerd.platform.messaging.rabbitmq"):
        await _publish(rabbitmq, envelopes("L1", 2))
    assert "2 of 2 events were unroutable" in caplog.text


async def test_an_oversized_event_is_rejected_and_nothing_is_sent(rabbitmq: RabbitMq) -> None:
    queue = await rabbitmq.bound_queue()
    batch = envelopes("L1", 3)
    batch[1] = dataclasses.replace(batch[1], data=bytes(1001))
    publisher = await rabbitmq.publisher(max_message_bytes=1000)
    try:
        with pytest.raises(EventRejectedError) as raised:
            await publisher.publish(batch)
        await publisher.publish(batch[:1])  # the publisher is still usable
    finally:
        await publisher.aclose()
    assert raised.value.event_id == batch[1].id
    assert (await _get(queue)).message_id == batch[0].id
    assert await queue.get(fail=False) is None


async def test_a_subscriber_reads_the_colon_prefix_and_structured_mode(
    rabbitmq: RabbitMq,
) -> None:
    subscriber = await rabbitmq.subscriber("modes")
    colon, structured = envelopes("L1", 2)
    attributes = colon.attributes()
    try:
        await rabbitmq.publish_raw(
            colon.data,
            {"content-type": attributes.pop("datacontenttype")}
            | {f"cloudEvents:{name}": value for name, value in attributes.items()},
        )
        await rabbitmq.publish_raw(
            structured.to_json(), {"content-type": "application/cloudevents+json; charset=utf-8"}
        )
        seen = await contract.collect(subscriber, lambda seen: len(seen.unique) == 2)
    finally:
        await subscriber.aclose()
    assert seen.order == [colon, structured]


async def test_a_subscriber_carries_on_after_its_connection_is_cut(rabbitmq: RabbitMq) -> None:
    subscriber = await rabbitmq.subscriber("cut")
    first, second = envelopes("L1", 1), envelopes("L1", 1, first=2)
    iterator = subscriber.deliveries()
    try:
        await _publish(rabbitmq, first)  # before the cut
        async with asyncio.timeout(WAIT_S):
            delivery = await anext(iterator)
        async with rabbitmq.proxy.outage():
            await delivery.ack()  # on a dead connection: nothing to do, it will come again
        async with asyncio.timeout(WAIT_S):
            await _publish_until_accepted(rabbitmq, second)
            received: list[Delivery] = []
            while len({d.envelope.id for d in received if d.envelope}) < 2:
                delivery = await anext(iterator)
                received.append(delivery)
                await delivery.ack()
    finally:
        await iterator.aclose()
        await subscriber.aclose()
    assert {d.envelope.sequence for d in received if d.envelope} == {1, 2}


async def _publish_until_accepted(rabbitmq: RabbitMq, batch: list[Envelope]) -> None:
    while True:
        with contextlib.suppress(BrokerUnavailableError):
            await _publish(rabbitmq, batch)
            return
        await asyncio.sleep(0.1)


async def test_an_unanswering_broker_fails_connecting_in_bounded_time() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept, never answer the AMQP handshake
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    started = time.monotonic()
    try:
        with pytest.raises(BrokerUnavailableError):
            await RabbitMqPublisher.connect(
                f"amqp://guest:guest@127.0.0.1:{port}/", connect_timeout_s=0.5
            )
    finally:
        server.close()
    assert time.monotonic() - started < 3
