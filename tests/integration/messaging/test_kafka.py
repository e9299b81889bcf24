"""The Kafka adapter against tansu, a Kafka-compatible broker: the contract, then its mapping.

The module starts one tansu (in memory) on a free port; clients reach it through a
``TcpProxy`` whose port tansu advertises, since Kafka clients connect to the advertised
listener after bootstrapping: cutting the proxy cuts every client off, and restoring it lets
them reconnect. Every test uses a topic of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import pytest

# aiokafka ships no type information; the tests only produce and read raw records with it.
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped]

from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.kafka import (
    DEFAULT_MAX_MESSAGE_BYTES,
    KafkaPublisher,
    KafkaSubscriber,
)
from ledgerd.platform.messaging.ports import BrokerUnavailableError, Delivery, EventRejectedError
from tests.conftest import service_unavailable
from tests.fakes.tcp_proxy import TcpProxy
from tests.integration.messaging import contract
from tests.integration.messaging.contract import BrokerUnderTest, envelopes
from tests.integration.messaging.tansu_broker import TansuUnavailableError, tansu_broker
from tests.network import free_port

PARTITIONS = 3
WAIT_S = 15.0
TIMEOUT_S = 2.0
RAW_KEY = b"L1"


@pytest.fixture(scope="module")
def tansu_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TcpProxy]:
    """A tansu broker for the module, behind the returned (not yet started) proxy."""
    port = free_port()
    proxy = TcpProxy("127.0.0.1", port)
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with contextlib.ExitStack() as running:
        try:
            running.enter_context(tansu_broker(log, port=port, advertised=proxy.address))
        except TansuUnavailableError as error:
            service_unavailable(str(error))
        yield proxy


class RawRecord(Protocol):
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: Sequence[tuple[str, bytes]]


@dataclass
class Kafka:
    """The broker as one test sees it: a topic of its own, through the proxy."""

    proxy: TcpProxy
    topic: str = dataclasses.field(default_factory=lambda: f"ledgerd.test.{uuid.uuid4().hex}")

    @property
    def bootstrap(self) -> str:
        return self.proxy.address

    async def publisher(
        self, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ) -> KafkaPublisher:
        return await KafkaPublisher.connect(
            self.bootstrap,
            topic=self.topic,
            partitions=PARTITIONS,
            publish_timeout_s=TIMEOUT_S,
            max_message_bytes=max_message_bytes,
        )

    async def subscriber(self, group: str) -> KafkaSubscriber:
        return await KafkaSubscriber.connect(
            self.bootstrap,
            group,
            topic=self.topic,
            partitions=PARTITIONS,
            # tansu holds a join for half the session timeout: keep it short for the tests.
            session_timeout_s=2.0,
        )

    async def publish_raw(self, body: bytes, headers: Mapping[str, str]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                self.topic,
                body,
                # The contract's ledger: Kafka orders a partition only, and the checks expect
                # a raw message before the events published after it (here, right before them
                # on their partition, so it must not hold them up either).
                key=RAW_KEY,
                headers=[(name, value.encode()) for name, value in headers.items()],
            )
        finally:
            await producer.stop()

    async def records(self, count: int) -> list[RawRecord]:
        """The first ``count`` records of the topic, read without a group."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([TopicPartition(self.topic, p) for p in range(PARTITIONS)])
            records: list[RawRecord] = []
            async with asyncio.timeout(WAIT_S):
                while len(records) < count:
                    batches = await consumer.getmany(timeout_ms=200)
                    for batch in batches.values():
                        records.extend(batch)
            return records
        finally:
            await consumer.stop()

    def broker(self) -> BrokerUnderTest:
        async def publisher() -> KafkaPublisher:
            return await self.publisher()

        return BrokerUnderTest(
            name="kafka",
            publisher=publisher,
            subscriber=self.subscriber,
            publish_raw=self.publish_raw,
            outage=self.proxy.outage,
        )


@pytest.fixture
async def kafka(tansu_proxy: TcpProxy) -> AsyncIterator[Kafka]:
    # The proxy object (its port) lives for the module; its server lives on the test's loop.
    await tansu_proxy.start()
    try:
        yield Kafka(tansu_proxy)
    finally:
        await tansu_proxy.aclose()


@pytest.fixture
def broker(kafka: Kafka) -> BrokerUnderTest:
    return kafka.broker()


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


async def _publish(kafka: Kafka, batch: list[Envelope]) -> None:
    publisher = await kafka.publisher()
    try:
        await publisher.publish(batch)
    finally:
        await publisher.aclose()


async def test_a_ledger_stays_on_one_partition_keyed_by_its_id(kafka: Kafka) -> None:
    ledgers = [f"acme.{n}" for n in range(8)]
    sent = contract.interleaved(*(envelopes(ledger, 5) for ledger in ledgers))

    await _publish(kafka, sent)

    records = await kafka.records(len(sent))
    partitions: dict[bytes, set[int]] = {}
    sequences: dict[bytes, list[int]] = {}
    for record in sorted(records, key=lambda record: record.offset):
        partitions.setdefault(record.key, set()).add(record.partition)
        sequences.setdefault(record.key, []).append(int(dict(record.headers)["ce_sequence"]))
    assert sorted(partitions) == sorted(ledger.encode() for ledger in ledgers)
    assert all(len(used) == 1 for used in partitions.values()), partitions
    assert len(set().union(*partitions.values())) > 1  # the ledgers are spread out
    assert all(stored == [1, 2, 3, 4, 5] for stored in sequences.values()), sequences


async def test_a_message_carries_the_attributes_as_headers(kafka: Kafka) -> None:
    [envelope] = envelopes("acme.eur", 1)

    await _publish(kafka, [envelope])

    [record] = await kafka.records(1)
    attributes = envelope.attributes()
    expected = [("content-type", attributes.pop("datacontenttype").encode())]
    expected += [(f"ce_{name}", value.encode()) for name, value in attributes.items()]
    assert list(record.headers) == expected
    assert record.key == b"acme.eur"
    assert record.value == envelope.data


async def test_an_oversized_event_is_rejected_and_nothing_is_sent(kafka: Kafka) -> None:
    batch = envelopes("L1", 3)
    batch[1] = dataclasses.replace(batch[1], data=bytes(5000))
    publisher = await kafka.publisher(max_message_bytes=4000)
    try:
        with pytest.raises(EventRejectedError) as raised:
            await publisher.publish(batch)
        await publisher.publish(batch[:1])  # the publisher is still usable
    finally:
        await publisher.aclose()
    assert raised.value.event_id == batch[1].id
    [record] = await kafka.records(1)
    assert dict(record.headers)["ce_id"] == batch[0].id.encode()


async def test_a_subscriber_reads_structured_mode(kafka: Kafka) -> None:
    subscriber = await kafka.subscriber("structured")
    [envelope] = envelopes("L1", 1)
    try:
        await kafka.publish_raw(
            envelope.to_json(), {"content-type": "application/cloudevents+json"}
        )
        seen = await contract.collect(subscriber, lambda seen: len(seen.unique) == 1)
    finally:
        await subscriber.aclose()
    assert seen.order == [envelope]


async def _next(iterator: AsyncIterator[Delivery]) -> Envelope:
    async with asyncio.timeout(WAIT_S):
        delivery = await anext(iterator)
    assert delivery.envelope is not None, delivery.problem
    return delivery.envelope


async def _first_delivery(kafka: Kafka, group: str, *, ack: int = 0) -> list[Delivery]:
    """Join ``group``, take its first ``max(ack, 1)`` deliveries (acking ``ack``), leave."""
    subscriber = await kafka.subscriber(group)
    iterator = subscriber.deliveries()
    received: list[Delivery] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while len(received) < max(ack, 1):
                received.append(delivery := await anext(iterator))
                if len(received) <= ack:
                    await delivery.ack()
    finally:
        await iterator.aclose()
        await subscriber.aclose()
    return received


async def test_acks_commit_but_never_past_an_unacked_earlier_message(kafka: Kafka) -> None:
    group = f"commit-{uuid.uuid4().hex[:8]}"
    sent = envelopes("L1", 4)  # one ledger: one partition
    subscriber = await kafka.subscriber(group)
    iterator = subscriber.deliveries()
    try:
        await _publish(kafka, sent[:3])
        async with asyncio.timeout(WAIT_S):
            received = [await anext(iterator) for _ in range(3)]
        await received[1].ack()
        await received[2].ack()  # the first one stays unacked
    finally:
        await iterator.aclose()
        await subscriber.aclose()

    # The group resumes at the unacked message; acking it and the rest commits them all.
    resumed = await _first_delivery(kafka, group, ack=3)
    assert [delivery.envelope for delivery in resumed] == sent[:3]
    await _publish(kafka, sent[3:])
    [after] = await _first_delivery(kafka, group)
    assert after.envelope == sent[3]


async def test_a_nack_delivers_that_message_next_then_what_followed(kafka: Kafka) -> None:
    sent = envelopes("L1", 4)
    subscriber = await kafka.subscriber(f"rewind-{uuid.uuid4().hex[:8]}")
    iterator = subscriber.deliveries()
    try:
        await _publish(kafka, sent)
        async with asyncio.timeout(WAIT_S):
            first = await anext(iterator)
            second = await anext(iterator)
        await first.ack()
        await second.nack()
        received = [await _next(iterator) for _ in range(3)]
    finally:
        await iterator.aclose()
        await subscriber.aclose()
    assert [envelope.sequence for envelope in received] == [2, 3, 4]


async def test_an_unreachable_broker_fails_connecting_in_bounded_time() -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError):
        await KafkaPublisher.connect(nowhere, connect_timeout_s=1.0)
    with pytest.raises(BrokerUnavailableError):
        await KafkaSubscriber.connect(
            nowhere, "nobody", connect_timeout_s=1.0, session_timeout_s=1.0
        )
    assert time.monotonic() - started < 8
