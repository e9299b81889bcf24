"""The NATS JetStream adapter: a publisher and a durable pull subscriber.

Mapping:

- **Stream**: one JetStream stream (default ``LEDGERD_EVENTS``) capturing ``<prefix>.>``
  (default prefix ``ledgerd.events``), file storage, with a duplicate window (default two
  minutes). The publisher creates it when it is missing, and so does the subscriber (it may
  come first); an existing stream is used as it is, as long as it captures the prefix.
- **Subject**: ``<prefix>.<ledger token>``, one subject per ledger. The token is the ledger
  id with every character but ``A-Z a-z 0-9 -`` written as ``_`` and two hex digits per
  UTF-8 byte (``acme.eur`` becomes ``acme_2Eeur``), so no ledger id can smuggle a token
  separator or a wildcard into the subject, and the id can be read back
  (``tokens.ledger_of_token``; RabbitMQ's routing keys use the same tokens). An empty id has
  no token, and an id whose subject would pass 2048 characters would make the server drop
  the connection: both are refused (``EventRejectedError``).
- **Message** (CloudEvents binary content mode): one header ``ce-<attribute>`` per
  :meth:`Envelope.attributes` entry, the body is ``envelope.data`` as is. Header values are
  percent-encoded the way the CloudEvents HTTP binding says (space, ``"``, ``%`` and anything
  outside printable ASCII), because NATS headers carry printable ASCII only and the client
  trims surrounding blanks; ids, URIs without spaces, type names and times pass unchanged.
- **Deduplication**: header ``Nats-Msg-Id`` is the envelope id, so JetStream stores an
  envelope the relay sends again within the duplicate window once (the PubAck then says
  ``duplicate``). A copy sent after the window is stored again, and a redelivery is no
  duplicate JetStream can see: consumers still deduplicate (the inbox).
- **Ordering**: ``publish`` sends one message at a time and waits for its PubAck before the
  next, so a failure stops the batch where it happened and nothing after it is stored ahead
  of it (a message whose PubAck was lost may be stored, but then the retry is a duplicate);
  per-ledger order on the stream is publish order. Pipelining would be faster, but a message
  refused mid-batch would leave its successors stored first. ``Nats-Expected-Stream`` makes
  JetStream refuse a message that would land in another stream.
- **Failures**: no PubAck within ``publish_timeout_s``, no responders, a lost or closed
  connection: ``BrokerUnavailableError``. While the connection is down the client buffers
  nothing (``pending_size=0``), so ``publish`` fails at once instead of queueing a stale
  message for later, and the client keeps reconnecting in the background for as long as it
  takes: the same publisher works again once the server is back. Only the first connection
  gives up (after two tries: ``BrokerUnavailableError`` from ``connect``). A message
  JetStream or the client refuses for its size: ``EventRejectedError``.
- **Subscriber**: a durable pull consumer named after the group (explicit ack, filter
  ``<prefix>.>``; a new one starts with the messages published after it was created unless
  ``deliver_all=True``; an existing one keeps its position and configuration), fetching up
  to ``batch`` messages at a time. ``ack`` is ``+ACK``, ``nack`` is ``-NAK`` (redelivered at
  once); a delivery left unsettled for ``ack_wait_s`` is redelivered too, and messages
  fetched but not yet handed out when the iteration stops are nacked on the way out.
  A message that is not a ledgerd envelope is delivered with ``envelope=None`` and the reason;
  its ``ack`` terminates it (``+TERM``: never redelivered, and JetStream publishes a
  ``MSG_TERMINATED`` advisory operators can watch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from urllib.parse import quote, unquote_to_bytes

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    StorageType,
    StreamConfig,
)

from ledgerd.platform.messaging.envelope import Envelope, MalformedEventError
from ledgerd.platform.messaging.ports import (
    BrokerUnavailableError,
    Delivery,
    EventRejectedError,
    PublishError,
)
from ledgerd.platform.messaging.tokens import ledger_token

log = logging.getLogger(__name__)

DEFAULT_STREAM = "LEDGERD_EVENTS"
DEFAULT_SUBJECT_PREFIX = "ledgerd.events"
HEADER_PREFIX = "ce-"
MSG_ID_HEADER = "Nats-Msg-Id"

# JetStream errors that concern one message, not the stream or the server.
_MESSAGE_TOO_LARGE = frozenset({10054, 10097})  # message size, header size over the limit
_STREAM_NAME_IN_USE = 10058  # created by someone else, with another configuration, meanwhile
# The server drops a connection whose protocol line (which holds the subject) exceeds its
# max_control_line (4 KiB by default); refusing longer subjects keeps one event from looking
# like an outage.
_MAX_SUBJECT_LENGTH = 2048
# CloudEvents' header rule: printable ASCII stays, but for the space, '"' and '%'.
_HEADER_SAFE = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) not in '"%')
_CONSUMER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PREFIX_TOKEN = re.compile(r"[^\s.*>]+")


def subject_token(ledger: str) -> str:
    """The subject token of ``ledger``: safe in a NATS subject, and reversible."""
    if not ledger:
        msg = "an empty ledger id has no subject token"
        raise ValueError(msg)
    return ledger_token(ledger)


def message_headers(envelope: Envelope) -> dict[str, str]:
    """The NATS headers of ``envelope`` in binary content mode, with its deduplication id."""
    headers = {
        HEADER_PREFIX + name: quote(value, safe=_HEADER_SAFE)
        for name, value in envelope.attributes().items()
    }
    headers[MSG_ID_HEADER] = envelope.id
    return headers


def envelope_of(headers: Mapping[str, str] | None, data: bytes) -> Envelope:
    """The envelope a binary-mode message carries; ``MalformedEventError`` if it is none."""
    attributes: dict[str, str] = {}
    for name, value in (headers or {}).items():
        lowered = name.lower()  # header names are case-insensitive in every binding
        if lowered.startswith(HEADER_PREFIX):
            try:
                attributes[lowered.removeprefix(HEADER_PREFIX)] = unquote_to_bytes(value).decode()
            except UnicodeDecodeError as error:
                msg = f"header {name} is not percent-encoded UTF-8"
                raise MalformedEventError(msg) from error
    return Envelope.from_attributes(attributes, data)


class NatsPublisher:
    """Publishes envelopes to a JetStream stream; see the module docstring."""

    def __init__(
        self,
        connection: Client,
        jetstream: JetStreamContext,
        *,
        stream: str,
        subject_prefix: str,
        publish_timeout_s: float,
    ) -> None:
        self._connection = connection
        self._jetstream = jetstream
        self._stream = stream
        self._prefix = subject_prefix
        self._timeout_s = publish_timeout_s

    @classmethod
    async def connect(  # noqa: PLR0913 - every knob is explicit, by keyword
        cls,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
        duplicate_window_s: float = 120.0,
        publish_timeout_s: float = 5.0,
        connect_timeout_s: float = 2.0,
        reconnect_wait_s: float = 2.0,
    ) -> NatsPublisher:
        """Connect to ``url`` and make sure the stream exists.

        ``BrokerUnavailableError`` if the server cannot be reached or does not answer.
        """
        _check_prefix(subject_prefix)
        connection = await _connect(
            url,
            name="ledgerd-publisher",
            connect_timeout_s=connect_timeout_s,
            reconnect_wait_s=reconnect_wait_s,
            # No buffering while disconnected: publish must fail now, not send later.
            pending_size=0,
        )
        try:
            jetstream = connection.jetstream(timeout=publish_timeout_s)
            await _ensure_stream(jetstream, stream, subject_prefix, duplicate_window_s)
        except BaseException:
            await connection.close()
            raise
        return cls(
            connection,
            jetstream,
            stream=stream,
            subject_prefix=subject_prefix,
            publish_timeout_s=publish_timeout_s,
        )

    def _subject_of(self, envelope: Envelope) -> str:
        try:
            token = subject_token(envelope.ledger)
        except ValueError as error:
            raise EventRejectedError(str(error), event_id=envelope.id) from error
        subject = f"{self._prefix}.{token}"
        if len(subject) > _MAX_SUBJECT_LENGTH:
            msg = f"the ledger id makes a subject longer than {_MAX_SUBJECT_LENGTH} characters"
            raise EventRejectedError(msg, event_id=envelope.id)
        return subject

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        for envelope in envelopes:
            await self._publish_one(envelope)

    async def _publish_one(self, envelope: Envelope) -> None:
        subject = self._subject_of(envelope)
        if self._connection.is_closed:
            msg = "the NATS publisher is closed"
            raise PublishError(msg)
        if not self._connection.is_connected:
            msg = "not connected to NATS (reconnecting)"
            raise BrokerUnavailableError(msg)
        try:
            # The outer bound also covers the client's own writes, not only the reply wait.
            async with asyncio.timeout(self._timeout_s):
                await self._jetstream.publish(
                    subject,
                    envelope.data,
                    timeout=self._timeout_s,
                    stream=self._stream,
                    headers=message_headers(envelope),
                )
        except (nats.errors.MaxPayloadError, nats.errors.BadHeaderError) as error:
            msg = f"NATS refused the message: {error}"
            raise EventRejectedError(msg, event_id=envelope.id) from error
        except nats.js.errors.APIError as error:
            raise _api_failure(error, envelope) from error
        except (
            TimeoutError,  # nats.errors.TimeoutError is one too
            nats.errors.NoRespondersError,
            nats.js.errors.NoStreamResponseError,
            nats.errors.OutboundBufferLimitError,
            nats.errors.ConnectionClosedError,
            nats.errors.ConnectionReconnectingError,
            nats.errors.StaleConnectionError,
            OSError,
        ) as error:
            msg = f"NATS did not acknowledge the message: {type(error).__name__}: {error}"
            raise BrokerUnavailableError(msg) from error

    async def aclose(self) -> None:
        if not self._connection.is_closed:
            await self._connection.close()


def _api_failure(error: nats.js.errors.APIError, envelope: Envelope) -> PublishError:
    text = f"JetStream refused the message: {error}"
    if isinstance(error, nats.js.errors.ServiceUnavailableError):
        return BrokerUnavailableError(text)
    if error.err_code in _MESSAGE_TOO_LARGE:
        return EventRejectedError(text, event_id=envelope.id)
    # Anything else (a stream that does not capture the subject, a stream-wide limit) is
    # not the event's fault: retried, never held against it.
    return PublishError(text)


class NatsSubscriber:
    """Deliveries from a durable JetStream pull consumer; see the module docstring."""

    def __init__(
        self,
        connection: Client,
        subscription: JetStreamContext.PullSubscription,
        *,
        batch: int,
        fetch_wait_s: float,
    ) -> None:
        self._connection = connection
        self._subscription = subscription
        self._batch = batch
        self._fetch_wait_s = fetch_wait_s
        self._closed = False

    @classmethod
    async def connect(  # noqa: PLR0913 - every knob is explicit, by keyword
        cls,
        url: str,
        group: str,
        *,
        stream: str = DEFAULT_STREAM,
        subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
        duplicate_window_s: float = 120.0,
        deliver_all: bool = False,
        ack_wait_s: float = 30.0,
        batch: int = 64,
        fetch_wait_s: float = 1.0,
        request_timeout_s: float = 5.0,
        connect_timeout_s: float = 2.0,
        reconnect_wait_s: float = 2.0,
    ) -> NatsSubscriber:
        """Connect, make sure the stream and the durable consumer ``group`` exist, and bind.

        ``deliver_all``: a consumer created now starts at the beginning of the stream rather
        than with what is published from now on; an existing consumer keeps its position.
        ``ack_wait_s``: a delivery neither acked nor nacked by then is delivered again.
        """
        _check_prefix(subject_prefix)
        if not _CONSUMER_NAME.fullmatch(group):
            msg = f"a consumer group name is 1-64 of A-Z a-z 0-9 _ -, not {group!r}"
            raise ValueError(msg)
        connection = await _connect(
            url,
            name=f"ledgerd-subscriber-{group}",
            connect_timeout_s=connect_timeout_s,
            reconnect_wait_s=reconnect_wait_s,
            # Acks and pull requests made during a short disconnection are sent on reconnect.
            pending_size=2 * 1024 * 1024,
        )
        try:
            jetstream = connection.jetstream(timeout=request_timeout_s)
            await _ensure_stream(jetstream, stream, subject_prefix, duplicate_window_s)
            config = ConsumerConfig(
                durable_name=group,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=ack_wait_s,
                deliver_policy=DeliverPolicy.ALL if deliver_all else DeliverPolicy.NEW,
            )
            try:
                subscription = await jetstream.pull_subscribe(
                    f"{subject_prefix}.>", durable=group, stream=stream, config=config
                )
            except (TimeoutError, nats.errors.NoRespondersError) as error:
                msg = f"JetStream did not answer: {type(error).__name__}: {error}"
                raise BrokerUnavailableError(msg) from error
        except BaseException:
            await connection.close()
            raise
        return cls(connection, subscription, batch=batch, fetch_wait_s=fetch_wait_s)

    async def deliveries(self) -> AsyncGenerator[Delivery, None]:
        while not self._closed:
            messages = await self._fetch()
            delivered = 0
            try:
                for message in messages:
                    delivered += 1
                    yield _delivery(message)
            finally:
                # Left before the end of a batch: hand the rest back at once rather than
                # after ack_wait.
                await self._hand_back(messages[delivered:])

    async def _fetch(self) -> list[Msg]:
        try:
            return await self._subscription.fetch(self._batch, timeout=self._fetch_wait_s)
        except TimeoutError:  # nothing to deliver (or the server is away): ask again
            return []
        except nats.errors.ConnectionClosedError:
            if self._closed:
                return []
            raise
        except (
            nats.errors.Error,  # a reconnect under way, a status the client did not expect
            OSError,
        ) as error:
            log.warning("NATS fetch failed, retrying: %s: %s", type(error).__name__, error)
            await asyncio.sleep(self._fetch_wait_s)  # let a reconnect happen before asking
            return []

    async def _hand_back(self, messages: Sequence[Msg]) -> None:
        for message in messages:
            with contextlib.suppress(nats.errors.Error, OSError):
                await message.nak()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._connection.is_closed:
            await self._connection.close()


def _delivery(message: Msg) -> Delivery:
    try:
        envelope = envelope_of(message.headers, message.data)
    except MalformedEventError as error:
        problem = f"not a ledgerd event on {message.subject}: {error}"
        return Delivery(envelope=None, problem=problem, ack=message.term, nack=message.nak)
    return Delivery(envelope=envelope, problem=None, ack=message.ack, nack=message.nak)


async def _connect(
    url: str,
    *,
    name: str,
    connect_timeout_s: float,
    reconnect_wait_s: float,
    pending_size: int,
) -> Client:
    client = Client()

    async def disconnected() -> None:
        if not client.is_closed:  # closed: we asked for it, nothing to report
            log.warning("%s: lost the connection to NATS at %s; reconnecting", name, url)

    async def reconnected() -> None:
        log.info("%s: reconnected to NATS at %s", name, url)

    async def failed(error: Exception) -> None:
        # The client retries on its own; the default callback would log a traceback each time.
        log.debug("%s: NATS client error: %s: %s", name, type(error).__name__, error)

    try:
        await client.connect(
            url,
            name=name,
            # Annotated int, but used as asyncio timeouts, which take fractions of a second.
            connect_timeout=connect_timeout_s,  # type: ignore[arg-type]
            reconnect_time_wait=reconnect_wait_s,  # type: ignore[arg-type]
            # The first connection: two tries, then BrokerUnavailableError. (The client's
            # "for ever" would hang here while the server is down.)
            max_reconnect_attempts=1,
            allow_reconnect=True,
            pending_size=pending_size,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=failed,
        )
    except (OSError, TimeoutError, nats.errors.Error) as error:
        msg = f"cannot connect to NATS at {url}: {type(error).__name__}: {error}"
        raise BrokerUnavailableError(msg) from error
    # Once connected, an outage must end in a reconnect, however long it lasts; the client
    # reads this option afresh on each reconnection attempt.
    client.options["max_reconnect_attempts"] = -1
    return client


async def _ensure_stream(
    jetstream: JetStreamContext, name: str, subject_prefix: str, duplicate_window_s: float
) -> None:
    """Create the stream if it is missing; check that an existing one captures the prefix."""
    wildcard = f"{subject_prefix}.>"
    config = StreamConfig(
        name=name,
        subjects=[wildcard],
        storage=StorageType.FILE,
        duplicate_window=duplicate_window_s,
    )
    try:
        try:
            info = await jetstream.stream_info(name)
        except nats.js.errors.NotFoundError:
            try:
                await jetstream.add_stream(config)
            except nats.js.errors.BadRequestError as error:
                if error.err_code != _STREAM_NAME_IN_USE:
                    raise
            # Created now, or by someone else meanwhile (then with their configuration).
            info = await jetstream.stream_info(name)
    except (
        TimeoutError,
        nats.errors.NoRespondersError,
        nats.js.errors.ServiceUnavailableError,
    ) as error:
        msg = f"JetStream did not answer: {type(error).__name__}: {error}"
        raise BrokerUnavailableError(msg) from error
    subjects = info.config.subjects or []
    if not any(_covers(pattern, wildcard) for pattern in subjects):
        msg = f"the JetStream stream {name} exists but does not capture {wildcard}: {subjects}"
        raise ValueError(msg)


def _check_prefix(subject_prefix: str) -> None:
    tokens = subject_prefix.split(".")
    if not all(token and _PREFIX_TOKEN.fullmatch(token) for token in tokens):
        msg = f"a subject prefix is dot-separated tokens without wildcards: {subject_prefix!r}"
        raise ValueError(msg)


def _covers(pattern: str, subjects: str) -> bool:
    """Whether every subject ``subjects`` matches is matched by ``pattern`` too."""
    wanted = subjects.split(".")
    parts = pattern.split(".")
    for index, part in enumerate(parts):
        if part == ">":
            return index < len(wanted)
        if index >= len(wanted) or wanted[index] == ">":
            return False
        if part not in {"*", wanted[index]}:
            return False
    return len(parts) == len(wanted)
