"""Amazon SQS adapter for the messaging ports: envelopes on a FIFO queue.

How the ports map onto SQS:

- **Queue**: one FIFO queue (its name ends in ``.fifo``; ``ContentBasedDeduplication=false``).
  Its consumers share its messages; a service of its own gets a queue of its own.
  ``create_fifo_queue`` makes one if it is missing. A standard queue is refused: it keeps
  neither order nor deduplication ids.
- **Order**: ``MessageGroupId`` is the ledger id. SQS keeps each group in order and lets one
  consumer at a time have a group's messages, so ledgers proceed in parallel and each in
  order. SQS takes 1 to 128 printable ASCII characters without space; any other ledger id
  becomes ``sha256:`` and its hex digest (the real id travels in the event as
  ``partitionkey``). Ledgers sharing a group would only wait for each other, never reorder.
- **Deduplication**: ``MessageDeduplicationId`` is the envelope id (mapped the same way): SQS
  drops a copy that the relay sends again within its 5-minute deduplication interval. Copies
  that come later are dropped by the consumer's inbox.
- **Body**: CloudEvents structured mode: the body is ``Envelope.to_json()`` (a protobuf
  payload in ``data_base64``, a JSON one as ``data``), with one message attribute
  ``content-type: application/cloudevents+json``. Binary mode saves nothing here: SQS bodies
  are text (XML's character set), so the protobuf bytes would be base64 either way, and the
  nine ``ce-`` attributes would take nine of a message's ten, leaving one for trace context
  and the like.
- **Limits**: a batch holds at most 10 messages. SQS counts the body plus every attribute's
  name, type and value against ``max_message_bytes`` for one message, and counts the total
  for a batch against the same limit. The default is 256 KiB, which every queue accepts
  (queues can be configured for up to 1 MiB). A larger envelope raises
  ``EventRejectedError`` without being sent.
- **Publishing**: ``SendMessageBatch`` in chunks, in order. No chunk is sent before SQS has
  accepted every entry of the one before. Outcomes:

  - SQS refuses an entry for a reason of that message's own (a sender fault):
    ``EventRejectedError``;
  - throttling, server faults, an unreachable endpoint, timeouts: ``BrokerUnavailableError``,
    raised once botocore's retries are spent. The connect and read timeouts and the attempts
    are parameters, small by default, so an outage fails ``publish`` rather than stalling it;
  - a request refused as a whole (credentials, permissions, missing queue): ``PublishError``.
- **Receiving**: ``ReceiveMessage`` long poll, up to 10 messages at a time. ``ack`` deletes
  the message; ``nack`` makes it visible again at once (``ChangeMessageVisibility`` 0). Once a
  message is nacked, the later messages of its ledger in the same batch are not handed out:
  they are made visible again too, so the ledger starts again from the nacked one. (This
  assumes that the consumer settles each delivery before it takes the next.) A body that is
  not an event comes as ``Delivery(envelope=None, problem=...)``; acking it deletes it. When
  the iteration stops, the messages of the batch not yet handed out are made visible again.
  While SQS cannot be reached, the iteration waits and tries again.

Known limit: SQS reports on each entry of a batch separately. If an entry fails while later
entries of the same ledger in that batch are accepted, the relay's retry puts the failed one
behind them. A consumer that needs strict order can tell from ``sequence``, which has no gaps
within a ledger.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

# aiobotocore and botocore ship no type information and the lock holds no stubs for them;
# the client they build is typed by types-aiobotocore-sqs.
from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from aiobotocore.session import get_session  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    HTTPClientError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from ledgerd.platform.messaging.envelope import Envelope, MalformedEventError
from ledgerd.platform.messaging.ports import (
    BrokerUnavailableError,
    Delivery,
    EventRejectedError,
    PublishError,
)

if TYPE_CHECKING:
    # A development dependency: only ever needed by the type checker.
    from types_aiobotocore_sqs.client import SQSClient
    from types_aiobotocore_sqs.type_defs import (
        BatchResultErrorEntryTypeDef,
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        MessageTypeDef,
        ReceiveMessageRequestTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

log = logging.getLogger(__name__)

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
CONTENT_TYPE_ATTRIBUTE = "content-type"
# Every queue takes this. Past 1 MiB per request, aiohttp warns that sending blocks the loop.
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
MAX_BATCH = 10  # entries per SendMessageBatch / ReceiveMessage, SQS's ceiling
MAX_WAIT_TIME_S = 20  # SQS's longest long poll

_SQS_ID = re.compile(r"[!-~]{1,128}")  # what SQS takes as a group or deduplication id
_DIGEST_PREFIX = "sha256:"
# Error codes that mean "not now" rather than "not this"; botocore has retried them already.
_TRANSIENT_CODES = frozenset(
    {"RequestThrottled", "ThrottlingException", "Throttling", "KmsThrottled", "OverLimit"}
)
_NETWORK_ERRORS = (HTTPClientError, BotoConnectionError)  # refused, reset, timed out
_FIRST_RETRY_DELAY_S = 0.1


def message_group_id(ledger: str) -> str:
    """The SQS ``MessageGroupId`` of a ledger's events."""
    return _sqs_id(ledger)


def deduplication_id(event_id: str) -> str:
    """The SQS ``MessageDeduplicationId`` of an event."""
    return _sqs_id(event_id)


def _sqs_id(value: str) -> str:
    # Ids that already carry the prefix are digested as well, so that no two values share one
    # result (the mapping stays one-to-one as far as SHA-256 does).
    if _SQS_ID.fullmatch(value) and not value.startswith(_DIGEST_PREFIX):
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return _DIGEST_PREFIX + digest


def sqs_client(
    *,
    region: str,
    endpoint_url: str | None = None,
    connect_timeout_s: float = 2.0,
    read_timeout_s: float = 5.0,
    max_attempts: int = 3,
) -> AbstractAsyncContextManager[SQSClient]:
    """An SQS client; credentials come from botocore's usual chain (environment, profile, role).

    ``endpoint_url``: an emulator's or a VPC endpoint's address instead of the region's.
    ``max_attempts`` counts the first try: with the timeouts it bounds how long a call takes.
    """
    config = AioConfig(
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        # "standard" retries throttling, server faults and network errors, with backoff.
        retries={"mode": "standard", "max_attempts": max_attempts},
    )
    client: AbstractAsyncContextManager[SQSClient] = get_session().create_client(
        "sqs", region_name=region, endpoint_url=endpoint_url, config=config
    )
    return client


async def create_fifo_queue(name: str, *, region: str, endpoint_url: str | None = None) -> str:
    """Create the FIFO queue ``name`` unless it exists (with these attributes); its URL."""
    _require_fifo(name)
    async with sqs_client(region=region, endpoint_url=endpoint_url) as client:
        created = await client.create_queue(
            QueueName=name,
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"},
        )
    return created["QueueUrl"]


class SqsPublisher:
    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        closer: AsyncExitStack,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._client = client
        self._queue_url = queue_url
        self._closer = closer
        self._max_message_bytes = max_message_bytes

    @classmethod
    async def connect(  # noqa: PLR0913 - every knob is explicit, by keyword
        cls,
        queue: str,
        *,
        region: str,
        endpoint_url: str | None = None,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 5.0,
        max_attempts: int = 3,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> Self:
        """A publisher to ``queue`` (a queue URL, or a name to look up).

        The worst case of one ``publish`` chunk while SQS is unreachable is about
        ``max_attempts * (connect_timeout_s + read_timeout_s)`` plus botocore's backoff.
        ``max_message_bytes`` must not exceed the queue's ``MaximumMessageSize``: SQS would
        refuse the request, and no retry would get past that.
        """
        client, url, closer = await _open(
            queue,
            region=region,
            endpoint_url=endpoint_url,
            connect_timeout_s=connect_timeout_s,
            read_timeout_s=read_timeout_s,
            max_attempts=max_attempts,
        )
        return cls(client, url, closer, max_message_bytes=max_message_bytes)

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        # One chunk at a time: a ledger's later events never overtake its earlier ones.
        for chunk in self._chunks(envelopes):
            await self._send(chunk)

    async def aclose(self) -> None:
        await self._closer.aclose()

    def _chunks(self, envelopes: Sequence[Envelope]) -> Iterator[list[_Outgoing]]:
        chunk: list[_Outgoing] = []
        size = 0
        for envelope in envelopes:
            message = _Outgoing.of(envelope)
            if message.size > self._max_message_bytes:
                if chunk:
                    yield chunk  # the envelopes before it still go out, in order
                msg = (
                    f"event {envelope.id} takes {message.size} bytes as an SQS message, "
                    f"more than the {self._max_message_bytes} allowed"
                )
                raise EventRejectedError(msg, event_id=envelope.id)
            if len(chunk) == MAX_BATCH or size + message.size > self._max_message_bytes:
                yield chunk
                chunk, size = [], 0
            chunk.append(message)
            size += message.size
        if chunk:
            yield chunk

    async def _send(self, chunk: Sequence[_Outgoing]) -> None:
        entries: list[SendMessageBatchRequestEntryTypeDef] = [
            {
                "Id": str(index),
                "MessageBody": message.body,
                "MessageGroupId": message_group_id(message.envelope.ledger),
                "MessageDeduplicationId": deduplication_id(message.envelope.id),
                "MessageAttributes": {
                    CONTENT_TYPE_ATTRIBUTE: {
                        "DataType": "String",
                        "StringValue": STRUCTURED_CONTENT_TYPE,
                    }
                },
            }
            for index, message in enumerate(chunk)
        ]
        try:
            result = await self._client.send_message_batch(
                QueueUrl=self._queue_url, Entries=entries
            )
        except ClientError as error:
            raise _request_error(error) from error
        except _NETWORK_ERRORS as error:
            msg = f"SQS did not answer: {error}"
            raise BrokerUnavailableError(msg) from error
        except BotoCoreError as error:  # no credentials, and the like
            msg = f"could not call SQS: {error}"
            raise PublishError(msg) from error
        failed = {failure["Id"]: failure for failure in result["Failed"]}
        accepted = {success["Id"] for success in result["Successful"]}
        for index, message in enumerate(chunk):  # the first failure in publishing order
            if str(index) in failed:
                raise _entry_error(message.envelope, failed[str(index)])
            if str(index) not in accepted:
                msg = f"SQS did not confirm event {message.envelope.id}"
                raise BrokerUnavailableError(msg)


@dataclass(frozen=True, slots=True)
class _Outgoing:
    envelope: Envelope
    body: str
    size: int  # as SQS counts it: body, and the attribute's name, type and value

    @classmethod
    def of(cls, envelope: Envelope) -> _Outgoing:
        body = envelope.to_json().decode()
        attribute = len(CONTENT_TYPE_ATTRIBUTE) + len("String") + len(STRUCTURED_CONTENT_TYPE)
        return cls(envelope, body, len(body.encode()) + attribute)


class SqsSubscriber:
    def __init__(  # noqa: PLR0913 - every knob is explicit, by keyword
        self,
        client: SQSClient,
        queue_url: str,
        closer: AsyncExitStack,
        *,
        wait_time_s: int = MAX_WAIT_TIME_S,
        max_messages: int = MAX_BATCH,
        visibility_timeout_s: int | None = None,
        max_retry_delay_s: float = 5.0,
    ) -> None:
        if not 0 <= wait_time_s <= MAX_WAIT_TIME_S:
            msg = f"wait_time_s must be 0 to {MAX_WAIT_TIME_S}, not {wait_time_s}"
            raise ValueError(msg)
        if not 1 <= max_messages <= MAX_BATCH:
            msg = f"max_messages must be 1 to {MAX_BATCH}, not {max_messages}"
            raise ValueError(msg)
        self._client = client
        self._queue_url = queue_url
        self._closer = closer
        self._request: ReceiveMessageRequestTypeDef = {
            "QueueUrl": queue_url,
            "MaxNumberOfMessages": max_messages,
            "WaitTimeSeconds": wait_time_s,
            "MessageAttributeNames": ["All"],
            "MessageSystemAttributeNames": ["MessageGroupId"],
        }
        if visibility_timeout_s is not None:  # else the queue's own setting
            self._request["VisibilityTimeout"] = visibility_timeout_s
        self._max_retry_delay_s = max_retry_delay_s
        self._closed = False

    @classmethod
    async def connect(  # noqa: PLR0913 - every knob is explicit, by keyword
        cls,
        queue: str,
        *,
        region: str,
        endpoint_url: str | None = None,
        wait_time_s: int = MAX_WAIT_TIME_S,
        max_messages: int = MAX_BATCH,
        visibility_timeout_s: int | None = None,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 5.0,
        max_attempts: int = 3,
        max_retry_delay_s: float = 5.0,
    ) -> Self:
        """A subscriber to ``queue`` (a queue URL, or a name to look up).

        ``wait_time_s``: the long poll (0 to 20 s); ``read_timeout_s`` is allowed on top of it.
        ``visibility_timeout_s``: how long a message stays with this consumer before SQS hands
        it out again (None: the queue's setting). ``max_retry_delay_s``: the longest wait
        between attempts to receive while SQS cannot be reached.
        """
        client, url, closer = await _open(
            queue,
            region=region,
            endpoint_url=endpoint_url,
            connect_timeout_s=connect_timeout_s,
            read_timeout_s=wait_time_s + read_timeout_s,
            max_attempts=max_attempts,
        )
        try:
            return cls(
                client,
                url,
                closer,
                wait_time_s=wait_time_s,
                max_messages=max_messages,
                visibility_timeout_s=visibility_timeout_s,
                max_retry_delay_s=max_retry_delay_s,
            )
        except ValueError:
            await closer.aclose()
            raise

    async def deliveries(self) -> AsyncGenerator[Delivery, None]:
        failures = 0
        while True:
            try:
                messages = await self._receive()
            except (ClientError, *_NETWORK_ERRORS) as error:
                if self._closed:  # aclose() closed the client under the long poll
                    return
                if isinstance(error, ClientError) and not _is_transient(error):
                    raise  # the queue is gone, no permission, ...: retrying will not help
                failures += 1
                delay = min(self._max_retry_delay_s, _FIRST_RETRY_DELAY_S * 2**failures)
                log.warning("receiving from SQS failed, again in %.1f s: %s", delay, error)
                await asyncio.sleep(delay)
                continue
            failures = 0
            held: set[str] = set()  # groups (ledgers) with a nacked message in this batch
            waiting = deque(messages)
            held_back: list[MessageTypeDef] = []
            try:
                while waiting:
                    message = waiting.popleft()
                    group = _group(message)
                    if group is not None and group in held:
                        held_back.append(message)  # it must come after the nacked one
                    else:
                        yield self._delivery(message, held)
            finally:
                # Visible again now rather than after the visibility timeout; a FIFO group
                # stays locked while any of its messages is out.
                await self._release([*held_back, *waiting])
            if self._closed:
                return

    async def aclose(self) -> None:
        self._closed = True
        await self._closer.aclose()

    async def _receive(self) -> list[MessageTypeDef]:
        # Botocore's retries of this call carry the same attempt id, so SQS hands out again
        # what an answer lost on the way had made invisible (FIFO queues only).
        request: ReceiveMessageRequestTypeDef = {
            **self._request,
            "ReceiveRequestAttemptId": uuid.uuid4().hex,
        }
        received = await self._client.receive_message(**request)
        return received.get("Messages", [])

    def _delivery(self, message: MessageTypeDef, held: set[str]) -> Delivery:
        receipt = message.get("ReceiptHandle", "")
        group = _group(message)

        async def ack() -> None:
            await self._client.delete_message(QueueUrl=self._queue_url, ReceiptHandle=receipt)

        async def nack() -> None:
            if group is not None:
                held.add(group)
            await self._client.change_message_visibility(
                QueueUrl=self._queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
            )

        try:
            envelope = Envelope.from_json(message.get("Body", ""))
        except MalformedEventError as error:
            return Delivery(envelope=None, problem=_problem(message, error), ack=ack, nack=nack)
        return Delivery(envelope=envelope, problem=None, ack=ack, nack=nack)

    async def _release(self, messages: Sequence[MessageTypeDef]) -> None:
        if not messages or self._closed:
            return
        entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
            {
                "Id": str(index),
                "ReceiptHandle": message.get("ReceiptHandle", ""),
                "VisibilityTimeout": 0,
            }
            for index, message in enumerate(messages)
        ]
        try:
            result = await self._client.change_message_visibility_batch(
                QueueUrl=self._queue_url, Entries=entries
            )
        except (ClientError, BotoCoreError) as error:
            # Not lost: they come back when their visibility timeout is over.
            log.warning("could not hand %d SQS messages back: %s", len(entries), error)
            return
        if result["Failed"]:
            log.warning(
                "SQS kept %d messages invisible: %s", len(result["Failed"]), result["Failed"]
            )


async def _open(  # noqa: PLR0913 - connect()'s knobs, passed on
    queue: str,
    *,
    region: str,
    endpoint_url: str | None,
    connect_timeout_s: float,
    read_timeout_s: float,
    max_attempts: int,
) -> tuple[SQSClient, str, AsyncExitStack]:
    closer = AsyncExitStack()
    try:
        client = await closer.enter_async_context(
            sqs_client(
                region=region,
                endpoint_url=endpoint_url,
                connect_timeout_s=connect_timeout_s,
                read_timeout_s=read_timeout_s,
                max_attempts=max_attempts,
            )
        )
        url = await _queue_url(client, queue)
    except BaseException:
        await closer.aclose()
        raise
    return client, url, closer


async def _queue_url(client: SQSClient, queue: str) -> str:
    if queue.startswith(("https://", "http://")):
        _require_fifo(queue.rstrip("/").rsplit("/", 1)[-1])
        return queue
    _require_fifo(queue)
    try:
        found = await client.get_queue_url(QueueName=queue)
    except _NETWORK_ERRORS as error:
        msg = f"SQS did not answer: {error}"
        raise BrokerUnavailableError(msg) from error
    return found["QueueUrl"]


def _require_fifo(name: str) -> None:
    # SQS gives FIFO queues, and only them, names ending in ".fifo".
    if not name.endswith(".fifo"):
        msg = f"{name!r} is not a FIFO queue: order per ledger and deduplication need one"
        raise ValueError(msg)


def _group(message: MessageTypeDef) -> str | None:
    return message.get("Attributes", {}).get("MessageGroupId")


def _problem(message: MessageTypeDef, error: MalformedEventError) -> str:
    attributes = message.get("MessageAttributes", {})
    content_type = (
        attributes[CONTENT_TYPE_ATTRIBUTE].get("StringValue")
        if CONTENT_TYPE_ATTRIBUTE in attributes
        else None
    )
    about = "" if content_type in {None, STRUCTURED_CONTENT_TYPE} else f" ({content_type})"
    return f"SQS message {message.get('MessageId', '?')}{about} is not an event: {error}"


def _code(error_code: str) -> str:
    # The JSON protocol reports some errors under their old query-protocol names.
    return error_code.removeprefix("AWS.SimpleQueueService.")


def _is_transient(error: Any) -> bool:  # noqa: ANN401 - botocore's ClientError is untyped
    response = error.response
    code = _code(str(response.get("Error", {}).get("Code", "")))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return code in _TRANSIENT_CODES or status >= 500  # noqa: PLR2004 - HTTP server errors


def _request_error(error: Any) -> PublishError:  # noqa: ANN401 - botocore's ClientError
    msg = f"SQS refused the request: {error}"
    if _is_transient(error):
        return BrokerUnavailableError(msg)
    return PublishError(msg)


def _entry_error(envelope: Envelope, failure: BatchResultErrorEntryTypeDef) -> PublishError:
    code = _code(failure["Code"])
    msg = f"SQS refused event {envelope.id}: {code} {failure.get('Message', '')}".rstrip()
    if code in _TRANSIENT_CODES or not failure["SenderFault"]:
        return BrokerUnavailableError(msg)
    if code.startswith("Kms"):  # the queue's encryption key is at fault, not this event
        return PublishError(msg)
    return EventRejectedError(msg, event_id=envelope.id)
