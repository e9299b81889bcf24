"""The Kafka adapter (aiokafka): a publisher and a consumer-group subscriber.

Mapping:

- **Topic**: one topic (default ``ledgerd.events``), created with ``partitions`` partitions
  when it is missing, by the publisher and by the subscriber (whichever comes first: a broker
  that creates topics on first use would otherwise make it with its default partition
  count). An existing topic is used as it is.
- **Key**: the ledger id (UTF-8), partitioned with Kafka's default partitioner (murmur2 of the
  key over all partitions, as the Java client does), so every event of a ledger lands on one
  partition and a ledger's order is the partition's order.
- **Message** (CloudEvents Kafka binding, binary content mode): one header ``ce_<attribute>``
  per attribute, except ``datacontenttype``, which is the ``content-type`` header, as the
  binding says; the value is ``envelope.data`` as is; header values are UTF-8.
- **Deduplication**: none on the broker (the idempotent producer would only drop the
  producer's own retries, and tansu does not offer it: see below). Consumers deduplicate on
  the envelope id (the inbox).
- **Ordering**: ``acks="all"``; a publish groups its envelopes by partition and hands each
  partition's messages over as record batches, the next batch only once the broker
  acknowledged the previous one (partitions go concurrently). A batch the client retries is
  retried before anything behind it, and a batch that fails stops its partition, so no
  message is stored ahead of an unacknowledged predecessor: the ordering an idempotent
  producer guarantees, without needing one (its deduplication of retries is what is left to
  the inbox). ``publish`` returns once every batch was acknowledged. Adding partitions to the
  topic later moves ledgers to other partitions: their order holds only from then on.
- **Failures**: no connection, no acknowledgement within ``publish_timeout_s``, or any error
  the broker reports for a batch: ``BrokerUnavailableError``; the client reconnects on its
  own, so the same publisher works again once the broker is back. A batch left behind by a
  failed publish may still be written later: it only holds envelopes the relay sends again,
  and it goes ahead of them, so the order stays intact. An envelope whose record would exceed
  ``max_message_bytes`` (set it to the topic's ``max.message.bytes``) is refused before
  anything is sent, and a record the broker refuses as too large, corrupt or with a bad
  timestamp is refused on its own: ``EventRejectedError``.
- **Subscriber**: a consumer group named after the group, auto commit off, a new group starts
  at the earliest offset (Kafka keeps the log, so nothing published before the group's first
  assignment is missed). ``ack`` commits the offset after the message, but never past a
  message of the same partition that was delivered and is not acked yet: the committed
  offset is the lowest outstanding one. ``nack`` seeks the partition back to the message, so
  it and what followed it are delivered again. A message that is not a ledgerd envelope is
  delivered with ``envelope=None`` and the reason; its ``ack`` commits past it. After a
  rebalance, settling a message of a partition this consumer lost does nothing: its new owner
  receives it again from the last commit. Fetches wait at most ``fetch_wait_s`` (0.1 s) for
  new records: tansu answers a fetch only when that wait is over, so it sets the latency.

Tansu 0.6 (the Kafka-compatible broker the tests run) creates topics through the admin API,
keeps consumer groups and their committed offsets, and takes ``acks=all``; it refuses
``InitProducerId`` (so no idempotent or transactional producer), creates a missing topic on
first produce (with four partitions), does not limit message sizes, and holds a group join
for half the session timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

# aiokafka ships no type information (no py.typed): the classes below are typed through the
# protocols that follow, which name the few methods this module calls.
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.abc import ConsumerRebalanceListener  # type: ignore[import-untyped]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]
from aiokafka.errors import (  # type: ignore[import-untyped]
    ConsumerStoppedError,
    CorruptRecordException,
    IllegalStateError,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAlreadyExistsError,
)
from aiokafka.partitioner import DefaultPartitioner  # type: ignore[import-untyped]
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped]

from ledgerd.platform.messaging.envelope import Envelope, MalformedEventError
from ledgerd.platform.messaging.ports import (
    BrokerUnavailableError,
    Delivery,
    EventRejectedError,
    PublishError,
)

log = logging.getLogger(__name__)

DEFAULT_TOPIC = "ledgerd.events"
DEFAULT_PARTITIONS = 12
HEADER_PREFIX = "ce_"
CONTENT_TYPE = "content-type"
# Below Kafka's default max.message.bytes (1 MiB + 12), which bounds a whole record batch.
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
_BATCH_OVERHEAD = 100  # batch header and record framing, rounded up
_STRUCTURED = "application/cloudevents"
# Broker errors about a record itself rather than the broker or the topic.
_RECORD_REFUSED = (
    CorruptRecordException,
    InvalidTimestampError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

Headers = list[tuple[str, bytes]]


class _BatchBuilder(Protocol):
    def append(
        self, *, timestamp: int | None, key: bytes | None, value: bytes | None, headers: Headers
    ) -> object | None: ...


class _Producer(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def partitions_for(self, topic: str) -> set[int]: ...
    def create_batch(self) -> _BatchBuilder: ...
    async def send_batch(
        self, batch: _BatchBuilder, topic: str, *, partition: int
    ) -> Awaitable[object]: ...


class _Record(Protocol):
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class _Consumer(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def subscribe(self, topics: list[str], *, listener: object) -> None: ...
    async def getone(self) -> _Record: ...
    def seek(self, partition: object, offset: int) -> None: ...
    async def commit(self, offsets: dict[object, int]) -> None: ...


def record_headers(envelope: Envelope) -> Headers:
    """The Kafka headers of ``envelope`` in binary content mode."""
    attributes = envelope.attributes()
    headers = [(CONTENT_TYPE, attributes.pop("datacontenttype").encode())]
    headers += [(HEADER_PREFIX + name, value.encode()) for name, value in attributes.items()]
    return headers


def envelope_of(value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> Envelope:
    """Read an envelope back (either content mode); ``MalformedEventError`` says why not."""
    attributes: dict[str, str] = {}
    content_type: str | None = None
    for name, raw in headers:
        if name != CONTENT_TYPE and not name.startswith(HEADER_PREFIX):
            continue
        try:
            text = raw.decode()
        except (AttributeError, UnicodeDecodeError) as error:  # None, or not UTF-8
            msg = f"header {name} is not UTF-8 text"
            raise MalformedEventError(msg) from error
        if name == CONTENT_TYPE:
            content_type = text
            continue
        attribute = name.removeprefix(HEADER_PREFIX)
        if attribute in attributes:
            msg = f"header {name} appears more than once"
            raise MalformedEventError(msg)
        attributes[attribute] = text
    if content_type is not None and content_type.lower().startswith(_STRUCTURED):
        return Envelope.from_json(value or b"")
    if content_type:
        attributes["datacontenttype"] = content_type
    return Envelope.from_attributes(attributes, value or b"")


async def ensure_topic(
    bootstrap_servers: str, topic: str, *, partitions: int, replication_factor: int
) -> None:
    """Create ``topic`` unless it exists; raises ``KafkaError`` if that fails."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await admin.start()
        response = await admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor)]
        )
    finally:
        await admin.close()
    for entry in response.topic_errors:  # (topic, error code[, message])
        code = entry[1]
        if code not in (0, TopicAlreadyExistsError.errno):
            msg = f"cannot create topic {topic!r}: {entry}"
            raise KafkaError(msg)


@dataclass(frozen=True, slots=True)
class _Outgoing:
    envelope: Envelope
    key: bytes
    headers: Headers

    @property
    def size(self) -> int:
        framing = sum(len(name) + len(value) for name, value in self.headers)
        return len(self.key) + len(self.envelope.data) + framing + _BATCH_OVERHEAD


class KafkaPublisher:
    """Publishes envelopes to the topic; returns once the broker acknowledged all of them."""

    def __init__(
        self,
        producer: _Producer,
        *,
        topic: str,
        publish_timeout_s: float,
        max_message_bytes: int,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._publish_timeout_s = publish_timeout_s
        self._max_message_bytes = max_message_bytes
        self._partitioner = DefaultPartitioner()
        # One publish at a time, so that publishes keep their order on every partition.
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def connect(  # noqa: PLR0913 - every knob is explicit, by keyword
        cls,
        bootstrap_servers: str,
        *,
        topic: str = DEFAULT_TOPIC,
        partitions: int = DEFAULT_PARTITIONS,
        replication_factor: int = 1,
        connect_timeout_s: float = 5.0,
        publish_timeout_s: float = 5.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> KafkaPublisher:
        """Connect to ``bootstrap_servers`` (``host:port[,host:port...]``), create the topic.

        Raises ``BrokerUnavailableError`` if the brokers cannot be reached.
        """
        producer: _Producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            # A publish goes out in record batches of up to this size (the broker's limit is on
            # a whole batch); a record larger than that alone is refused before sending.
            max_batch_size=max_message_bytes,
            # A batch the broker has not acknowledged in this time fails; one left behind by a
            # publish that gave up does not linger for long.
            request_timeout_ms=int(publish_timeout_s * 1000),
        )
        try:
            async with asyncio.timeout(connect_timeout_s):
                await ensure_topic(
                    bootstrap_servers,
                    topic,
                    partitions=partitions,
                    replication_factor=replication_factor,
                )
                await producer.start()
        except (KafkaError, OSError, TimeoutError) as error:
            await producer.stop()
            msg = f"Kafka is unavailable at {bootstrap_servers}: {_describe(error)}"
            raise BrokerUnavailableError(msg) from error
        return cls(
            producer,
            topic=topic,
            publish_timeout_s=publish_timeout_s,
            max_message_bytes=max_message_bytes,
        )

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        outgoing = [
            _Outgoing(envelope, envelope.ledger.encode(), record_headers(envelope))
            for envelope in envelopes
        ]
        for item in outgoing:
            if item.size > self._max_message_bytes:
                msg = (
                    f"event {item.envelope.id} would be a record of about {item.size} bytes, "
                    f"more than the {self._max_message_bytes} the topic accepts"
                )
                raise EventRejectedError(msg, event_id=item.envelope.id)
        async with self._lock:
            if self._closed:
                msg = "the Kafka publisher is closed"
                raise PublishError(msg)
            try:
                async with asyncio.timeout(self._publish_timeout_s):
                    await self._publish(outgoing)
            except (KafkaError, OSError, TimeoutError) as error:
                msg = f"Kafka did not acknowledge every event: {_describe(error)}"
                raise BrokerUnavailableError(msg) from error

    async def aclose(self) -> None:
        async with self._lock:
            if not self._closed:
                self._closed = True
                await self._producer.stop()

    async def _publish(self, outgoing: Sequence[_Outgoing]) -> None:
        partitions = sorted(await self._producer.partitions_for(self._topic))
        streams: dict[int, list[_Outgoing]] = {}
        for item in outgoing:
            partition: int = self._partitioner(item.key, partitions, partitions)
            streams.setdefault(partition, []).append(item)
        outcomes = await asyncio.gather(
            *(self._send_in_order(partition, stream) for partition, stream in streams.items()),
            return_exceptions=True,
        )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        # A refused event is the more useful news: the relay counts it against that event.
        for failure in sorted(failures, key=lambda f: not isinstance(f, EventRejectedError)):
            raise failure

    async def _send_in_order(self, partition: int, stream: Sequence[_Outgoing]) -> None:
        """Hand ``stream`` over batch by batch, each once the previous one was acknowledged."""
        start = 0
        while start < len(stream):
            batch = self._producer.create_batch()
            end = start
            while end < len(stream) and _append(batch, stream[end]) is not None:
                end += 1  # the first record always fits, so every batch takes one at least
            try:
                sent = await self._producer.send_batch(batch, self._topic, partition=partition)
                await sent
            except _RECORD_REFUSED as error:
                if end - start == 1:
                    envelope = stream[start].envelope
                    msg = f"Kafka refused event {envelope.id}: {_describe(error)}"
                    raise EventRejectedError(msg, event_id=envelope.id) from error
                # Which record of the batch? Send them one by one to find out.
                for item in stream[start:end]:
                    await self._send_in_order(partition, [item])
            start = end


def _append(batch: _BatchBuilder, item: _Outgoing) -> object | None:
    return batch.append(
        timestamp=None, key=item.key, value=item.envelope.data, headers=item.headers
    )


@dataclass(eq=False)
class _PartitionState:
    """What one partition delivered and what of it is acked, to commit no further than that."""

    partition: int
    outstanding: set[int] = field(default_factory=set)  # delivered, not acked yet
    delivered_to: int = 0  # one past the highest offset delivered
    fetch_position: int = 0  # the offset the consumer hands over next
    committed: int = -1

    def delivered(self, offset: int) -> None:
        self.outstanding.add(offset)
        self.delivered_to = max(self.delivered_to, offset + 1)
        self.fetch_position = offset + 1

    def commit_position(self) -> int:
        return min(self.outstanding, default=self.delivered_to)


class _ForgetOnRebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base
    """After a rebalance a partition starts again from its commit: its old state is void."""

    def __init__(self, forget: Callable[[Iterable[int]], None]) -> None:
        self._forget = forget

    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        self._forget(tp.partition for tp in revoked)

    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        self._forget(tp.partition for tp in assigned)


class KafkaSubscriber:
    """Consumes the topic as a member of the group, committing only what was acked."""

    def __init__(self, consumer: _Consumer, *, topic: str, group: str) -> None:
        self._consumer = consumer
        self._topic = topic
        self._group = group
        self._states: dict[int, _PartitionState] = {}
        self._commit_lock = asyncio.Lock()  # commits in order, or a later one could go back

    @classmethod
    async def connect(  # noqa: PLR0913 - every knob is explicit, by keyword
        cls,
        bootstrap_servers: str,
        group: str,
        *,
        topic: str = DEFAULT_TOPIC,
        partitions: int = DEFAULT_PARTITIONS,
        replication_factor: int = 1,
        connect_timeout_s: float = 5.0,
        session_timeout_s: float = 10.0,
        auto_offset_reset: Literal["earliest", "latest"] = "earliest",
        fetch_wait_s: float = 0.1,
    ) -> KafkaSubscriber:
        """Join ``group`` on ``topic`` (created if missing); return once partitions are assigned.

        A member silent for ``session_timeout_s`` leaves the group. Joining may take half of
        it (tansu holds a join that long for other members to come), so the wait is bounded by
        ``connect_timeout_s + session_timeout_s``. Raises ``BrokerUnavailableError`` if the
        brokers cannot be reached. ``fetch_wait_s``: how long the broker may hold a fetch
        while it has nothing new; a broker may answer only when it runs out (tansu does), so
        it bounds how late an event can reach the consumer (aiokafka's default is 0.5 s).
        """
        session_ms = int(session_timeout_s * 1000)
        consumer: _Consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=session_ms // 4,  # a few heartbeats per session, as Kafka's
            fetch_max_wait_ms=int(fetch_wait_s * 1000),
        )
        subscriber = cls(consumer, topic=topic, group=group)
        consumer.subscribe([topic], listener=_ForgetOnRebalance(subscriber._forget))
        try:
            async with asyncio.timeout(connect_timeout_s + session_timeout_s):
                await ensure_topic(
                    bootstrap_servers,
                    topic,
                    partitions=partitions,
                    replication_factor=replication_factor,
                )
                await consumer.start()
        except (KafkaError, OSError, TimeoutError) as error:
            await consumer.stop()
            msg = f"Kafka is unavailable at {bootstrap_servers}: {_describe(error)}"
            raise BrokerUnavailableError(msg) from error
        return subscriber

    async def deliveries(self) -> AsyncGenerator[Delivery, None]:
        while True:
            try:
                record = await self._consumer.getone()
            except ConsumerStoppedError:
                return
            except KafkaError as error:
                # The consumer recovers from what it can on its own; say why we wait.
                log.warning("Kafka subscriber %r: %s", self._group, _describe(error))
                await asyncio.sleep(1.0)
                continue
            yield self._delivery(record)

    async def aclose(self) -> None:
        self._states.clear()  # what is settled from now on is not committed: it comes again
        await self._consumer.stop()

    def _delivery(self, record: _Record) -> Delivery:
        state = self._states.get(record.partition)
        if state is None:
            state = self._states[record.partition] = _PartitionState(record.partition)
        state.delivered(record.offset)
        ack = self._acker(state, record.offset)
        nack = self._nacker(state, record.offset)
        try:
            envelope = envelope_of(record.value, record.headers)
        except MalformedEventError as error:
            where = f"partition {record.partition} offset {record.offset}"
            return Delivery(None, f"not a ledgerd event ({where}): {error}", ack, nack)
        return Delivery(envelope, None, ack, nack)

    def _acker(self, state: _PartitionState, offset: int) -> Callable[[], Awaitable[None]]:
        async def ack() -> None:
            state.outstanding.discard(offset)
            if self._states.get(state.partition) is not state:
                return  # the partition moved on (rebalance): its new owner has it again
            async with self._commit_lock:
                position = state.commit_position()
                if position <= state.committed:
                    return
                try:
                    await self._consumer.commit(
                        {TopicPartition(self._topic, state.partition): position}
                    )
                except (KafkaError, ConsumerStoppedError) as error:
                    # Not committed: the message may come again, which at least once allows.
                    log.info("Kafka subscriber %r: commit failed: %s", self._group, error)
                    return
                state.committed = position

        return ack

    def _nacker(self, state: _PartitionState, offset: int) -> Callable[[], Awaitable[None]]:
        async def nack() -> None:
            if self._states.get(state.partition) is not state:
                return  # the partition moved on: it restarts from the commit anyway
            if offset < state.fetch_position:  # else an earlier nack rewound past it already
                state.fetch_position = offset
                try:
                    self._consumer.seek(TopicPartition(self._topic, state.partition), offset)
                except IllegalStateError:
                    return  # no longer assigned: its new owner starts from the commit

        return nack

    def _forget(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._states.pop(partition, None)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
