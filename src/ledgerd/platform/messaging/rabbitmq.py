"""The RabbitMQ adapter (AMQP 0-9-1, aio-pika): a confirming publisher and a queue subscriber.

Mapping:

- **Exchange**: one durable topic exchange (default ``ledgerd.events``), declared by the
  publisher and by every subscriber, whichever comes first.
- **Routing key**: ``ledger.<ledger token>``. The token is the ledger id with every character
  but ``A-Z a-z 0-9 -`` written as ``_`` and two hex digits per UTF-8 byte (``acme.eur``
  becomes ``acme_2Eeur``), so a ledger id can neither split the key into more words (``.``)
  nor act as a wildcard in a binding (``*``, ``#``), and a subscriber can bind one ledger
  with ``ledger.<token>`` (:func:`routing_key`). A token longer than a routing key allows
  (255 bytes) is replaced by ``=`` and the SHA-256 of the id in hex; ``=`` never appears in
  an escaped token, so the two forms cannot collide.
- **Message** (CloudEvents AMQP binding, binary content mode): one application header
  ``cloudEvents_<attribute>`` per attribute, except ``datacontenttype``, which is the
  ``content_type`` property, as the binding says; the body is ``envelope.data`` as is;
  ``message_id`` is the envelope id; persistent delivery. The binding allows ``cloudEvents:``
  and ``cloudEvents_`` and prefers ``_``: JMS clients (RabbitMQ's among them) and their
  message selectors cannot name a property with a colon, and AMQP 0-9-1 itself only allows
  letters, digits, ``$``, ``#`` and ``_`` in field names (RabbitMQ does not enforce it).
  The subscriber reads either prefix.
- **Deduplication**: none on the broker: RabbitMQ keeps every copy of an envelope the relay
  sends again. Consumers deduplicate on the envelope id (the inbox); ``message_id`` carries it
  for tools that look there.
- **Ordering**: one channel in confirm mode. The envelopes of one ledger are sent one at a
  time, each after the previous one was confirmed, so a failure stops that ledger where it
  happened and nothing of it is stored ahead of an unconfirmed predecessor; different ledgers
  of a batch go concurrently on the same channel. ``publish`` returns once every message was
  confirmed. Publishing is mandatory: a message no queue is bound for comes back and is
  logged as a warning, but counts as published (see :class:`RabbitMqPublisher`).
- **Failures**: no connection within ``connect_timeout_s``, no confirm within
  ``publish_timeout_s``, a broker nack, a closed channel or connection:
  ``BrokerUnavailableError``; the connection is then dropped and the next ``publish`` opens a
  new one, so the same publisher works again once the broker is back. An envelope larger
  than ``max_message_bytes`` is refused before anything is sent: ``EventRejectedError``.
- **Subscriber**: a durable queue named after the group, bound with ``ledger.#``, declared
  when the subscriber is created (so it keeps everything published from then on, also while
  nobody consumes), with ``x-single-active-consumer`` so that several processes of one group
  take turns instead of splitting (and reordering) a ledger's stream. Manual acks with a
  bounded prefetch; ``ack`` is ``basic.ack``, ``nack`` is ``basic.nack`` with requeue (the
  message goes back to the head of the queue and comes again, after those already
  prefetched). A message that is not a ledgerd envelope is delivered with ``envelope=None``
  and the reason; its ``ack`` rejects it without requeue (dropped, or dead-lettered if the
  queue has a dead-letter policy). A lost connection is reopened after
  ``reconnect_interval_s``; whatever was unacked then comes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)
from aio_pika.exceptions import AMQPError, ChannelClosed, ChannelInvalidStateError
from aiormq.abc import DeliveredMessage

from ledgerd.platform.messaging.envelope import Envelope, MalformedEventError
from ledgerd.platform.messaging.ports import (
    BrokerUnavailableError,
    Delivery,
    EventRejectedError,
    PublishError,
    Settle,
)
from ledgerd.platform.messaging.tokens import ledger_token

log = logging.getLogger(__name__)

DEFAULT_EXCHANGE = "ledgerd.events"
HEADER_PREFIX = "cloudEvents_"
_COLON_PREFIX = "cloudEvents:"  # the binding's other spelling, accepted on receipt
ROUTING_PREFIX = "ledger."
BINDING_KEY = "ledger.#"
# RabbitMQ 4's default max_message_size (3.x allowed 128 MiB); set it to the broker's limit.
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
DEFAULT_PREFETCH = 100
_MAX_ROUTING_KEY_BYTES = 255
_STRUCTURED = "application/cloudevents+json"
# What a lost connection, a closed channel, a broker nack or a timeout raise from aio-pika;
# ChannelInvalidStateError (a RuntimeError) is a channel that was already closed.
_BROKER_ERRORS = (AMQPError, ChannelInvalidStateError, ConnectionError, OSError, TimeoutError)


def routing_key(ledger: str) -> str:
    """The routing key of ``ledger``'s events; a subscriber may bind it to follow one ledger."""
    key = ROUTING_PREFIX + ledger_token(ledger)
    if len(key) > _MAX_ROUTING_KEY_BYTES:  # the token is ASCII: characters are bytes
        key = ROUTING_PREFIX + "=" + hashlib.sha256(ledger.encode()).hexdigest()
    return key


def message_of(envelope: Envelope) -> aio_pika.Message:
    """The AMQP message of ``envelope`` in binary content mode."""
    attributes = envelope.attributes()
    content_type = attributes.pop("datacontenttype")
    return aio_pika.Message(
        envelope.data,
        headers={HEADER_PREFIX + name: value for name, value in attributes.items()},
        content_type=content_type,
        message_id=envelope.id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def envelope_of(body: bytes, headers: Mapping[str, object], content_type: str | None) -> Envelope:
    """Read an envelope back (either content mode); ``MalformedEventError`` says why not."""
    if content_type is not None and content_type.lower().startswith(_STRUCTURED):
        return Envelope.from_json(body)
    attributes: dict[str, str] = {}
    prefixes: set[str] = set()
    for name, value in headers.items():
        prefix = next((p for p in (HEADER_PREFIX, _COLON_PREFIX) if name.startswith(p)), None)
        if prefix is None:
            continue
        if not isinstance(value, str):
            msg = f"header {name} is not a string but {type(value).__name__}"
            raise MalformedEventError(msg)
        prefixes.add(prefix)
        attributes[name.removeprefix(prefix)] = value
    if len(prefixes) > 1:
        msg = "the message mixes cloudEvents_ and cloudEvents: headers"
        raise MalformedEventError(msg)
    if content_type:
        attributes["datacontenttype"] = content_type
    return Envelope.from_attributes(attributes, body)


class RabbitMqPublisher:
    """Publishes envelopes to the exchange and returns once RabbitMQ confirmed all of them.

    A message that no queue is bound for is confirmed after being returned: it is logged and
    counted as published. RabbitMQ has dropped it, but nobody had asked for it: subscribers
    declare their durable queues when they are created, so an unroutable event means no
    subscriber group exists yet, which is the publish/subscribe contract, not a broker
    failure (retrying would stall the relay until someone subscribes) and not the event's
    fault (``EventRejectedError`` would dead-letter every event).
    """

    def __init__(
        self,
        url: str,
        *,
        exchange: str,
        connect_timeout_s: float,
        publish_timeout_s: float,
        max_message_bytes: int,
    ) -> None:
        self._url = url
        self._exchange_name = exchange
        self._connect_timeout_s = connect_timeout_s
        self._publish_timeout_s = publish_timeout_s
        self._max_message_bytes = max_message_bytes
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        # One publish at a time: calls keep their order, and only one of them reconnects.
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        exchange: str = DEFAULT_EXCHANGE,
        connect_timeout_s: float = 5.0,
        publish_timeout_s: float = 5.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> RabbitMqPublisher:
        """Connect to ``url`` (``amqp://user:password@host:port/vhost``), declare the exchange.

        Raises ``BrokerUnavailableError`` if the broker cannot be reached.
        """
        publisher = cls(
            url,
            exchange=exchange,
            connect_timeout_s=connect_timeout_s,
            publish_timeout_s=publish_timeout_s,
            max_message_bytes=max_message_bytes,
        )
        async with publisher._lock:
            await publisher._open()
        return publisher

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        for envelope in envelopes:
            if len(envelope.data) > self._max_message_bytes:
                msg = (
                    f"event {envelope.id} is {len(envelope.data)} bytes, more than the "
                    f"{self._max_message_bytes} RabbitMQ accepts"
                )
                raise EventRejectedError(msg, event_id=envelope.id)
        async with self._lock:
            if self._closed:
                msg = "the RabbitMQ publisher is closed"
                raise PublishError(msg)
            exchange = await self._open()
            outcomes = await asyncio.gather(
                *(self._publish_ledger(exchange, stream) for stream in _by_ledger(envelopes)),
                return_exceptions=True,
            )
            failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
            if failures:
                await self._drop()
                raise _as_publish_error(failures)
        unroutable = sum(outcome for outcome in outcomes if isinstance(outcome, int))
        if unroutable:
            log.warning(
                "%d of %d events were unroutable: no queue is bound to exchange %r for them",
                unroutable,
                len(envelopes),
                self._exchange_name,
            )

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
            await self._drop()

    async def _publish_ledger(self, exchange: AbstractExchange, stream: Sequence[Envelope]) -> int:
        """Send one ledger's envelopes in order, each once the previous one is confirmed."""
        unroutable = 0
        for envelope in stream:
            result = await exchange.publish(
                message_of(envelope),
                routing_key(envelope.ledger),
                mandatory=True,
                timeout=self._publish_timeout_s,
            )
            if isinstance(result, DeliveredMessage):  # returned: no queue bound for it
                unroutable += 1
        return unroutable

    async def _open(self) -> AbstractExchange:
        if self._exchange is not None and _is_open(self._connection, self._channel):
            return self._exchange
        await self._drop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                self._connection = await aio_pika.connect(self._url)
                self._channel = await self._connection.channel(
                    publisher_confirms=True, on_return_raises=False
                )
                exchange = await _declare_exchange(self._channel, self._exchange_name)
        except _BROKER_ERRORS as error:
            await self._drop()
            msg = f"RabbitMQ is unavailable: {_describe(error)}"
            raise BrokerUnavailableError(msg) from error
        self._exchange = exchange
        return exchange

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = self._exchange = None
        if connection is not None:
            await _close_quietly(connection, self._connect_timeout_s)


class RabbitMqSubscriber:
    """Consumes the group's durable queue; reconnects on its own while it is iterated."""

    def __init__(  # noqa: PLR0913 - every knob is explicit, by keyword
        self,
        url: str,
        group: str,
        *,
        exchange: str,
        prefetch: int,
        connect_timeout_s: float,
        reconnect_interval_s: float,
    ) -> None:
        self._url = url
        self._group = group
        self._exchange_name = exchange
        self._prefetch = prefetch
        self._connect_timeout_s = connect_timeout_s
        self._reconnect_interval_s = reconnect_interval_s
        self._connection: AbstractConnection | None = None
        self._queue: AbstractQueue | None = None
        self._closed = asyncio.Event()

    @classmethod
    async def connect(  # noqa: PLR0913 - every knob is explicit, by keyword
        cls,
        url: str,
        group: str,
        *,
        exchange: str = DEFAULT_EXCHANGE,
        prefetch: int = DEFAULT_PREFETCH,
        connect_timeout_s: float = 5.0,
        reconnect_interval_s: float = 1.0,
    ) -> RabbitMqSubscriber:
        """Connect to ``url`` and declare the exchange and ``group``'s queue and binding.

        From then on the queue keeps every event published. Raises
        ``BrokerUnavailableError`` if the broker cannot be reached.
        """
        subscriber = cls(
            url,
            group,
            exchange=exchange,
            prefetch=prefetch,
            connect_timeout_s=connect_timeout_s,
            reconnect_interval_s=reconnect_interval_s,
        )
        try:
            await subscriber._open()
        except _BROKER_ERRORS as error:
            msg = f"RabbitMQ is unavailable: {_describe(error)}"
            raise BrokerUnavailableError(msg) from error
        return subscriber

    async def deliveries(self) -> AsyncGenerator[Delivery, None]:
        while not self._closed.is_set():
            try:
                queue = await self._open()
                async with queue.iterator() as messages:
                    async for message in messages:
                        yield _delivery(message)
                # The iterator ends quietly when its channel closes under it.
                reason = "the channel was closed"
            except _BROKER_ERRORS as error:
                reason = _describe(error)
            if self._closed.is_set():
                return
            log.warning(
                "RabbitMQ subscriber %r stopped receiving (%s); reconnecting", self._group, reason
            )
            await self._drop()
            # Wait before reconnecting, unless aclose() comes first.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._reconnect_interval_s):
                    await self._closed.wait()

    async def aclose(self) -> None:
        self._closed.set()
        await self._drop()

    async def _open(self) -> AbstractQueue:
        if self._queue is not None and _is_open(self._connection, self._queue.channel):
            return self._queue
        await self._drop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                self._connection = await aio_pika.connect(self._url)
                channel = await self._connection.channel()
                await channel.set_qos(prefetch_count=self._prefetch)
                exchange = await _declare_exchange(channel, self._exchange_name)
                queue = await channel.declare_queue(
                    self._group,
                    durable=True,
                    arguments={"x-single-active-consumer": True},
                )
                await queue.bind(exchange, BINDING_KEY)
        except BaseException:
            await self._drop()
            raise
        self._queue = queue
        return queue

    async def _drop(self) -> None:
        connection, self._connection, self._queue = self._connection, None, None
        if connection is not None:
            await _close_quietly(connection, self._connect_timeout_s)


def _by_ledger(envelopes: Sequence[Envelope]) -> list[list[Envelope]]:
    streams: dict[str, list[Envelope]] = {}
    for envelope in envelopes:
        streams.setdefault(envelope.ledger, []).append(envelope)
    return list(streams.values())


def _as_publish_error(failures: Sequence[BaseException]) -> PublishError:
    for failure in failures:
        if not isinstance(failure, _BROKER_ERRORS):
            raise failure  # not the broker's doing: a bug, let it show
    msg = f"RabbitMQ did not confirm every event: {_describe(failures[0])}"
    error = BrokerUnavailableError(msg)
    error.__cause__ = failures[0]
    return error


def _is_open(connection: AbstractConnection | None, channel: AbstractChannel | None) -> bool:
    return (
        connection is not None
        and not connection.is_closed
        and channel is not None
        and not channel.is_closed
    )


async def _declare_exchange(channel: AbstractChannel, name: str) -> AbstractExchange:
    return await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)


async def _close_quietly(connection: AbstractConnection, timeout_s: float) -> None:
    # Closing a connection whose peer is gone may fail or hang; either way it is gone.
    with contextlib.suppress(*_BROKER_ERRORS):
        async with asyncio.timeout(timeout_s):
            await connection.close()


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _delivery(message: AbstractIncomingMessage) -> Delivery:
    try:
        envelope = envelope_of(message.body, message.headers, message.content_type)
    except MalformedEventError as error:
        return Delivery(
            envelope=None,
            problem=f"not a ledgerd event (message {message.message_id!r}): {error}",
            ack=_settle(lambda: message.reject(requeue=False)),
            nack=_settle(lambda: message.nack(requeue=True)),
        )
    return Delivery(
        envelope=envelope,
        problem=None,
        ack=_settle(message.ack),
        nack=_settle(lambda: message.nack(requeue=True)),
    )


def _settle(action: Callable[[], Awaitable[None]]) -> Settle:
    async def settle() -> None:
        # A message received on a connection that is gone cannot be settled any more; RabbitMQ
        # delivers it again anyway, which is what an unsettled message means.
        try:
            await action()
        except (ChannelClosed, ChannelInvalidStateError, ConnectionError) as error:
            log.info("could not settle a message, RabbitMQ will redeliver it: %s", error)

    return settle
