"""The SQS adapter against moto's server (an AWS emulator), one fresh FIFO queue per test.

The adapter reaches the emulator through a ``TcpProxy``, which the outage tests cut. What
moto emulates and what it does not is listed in ``sqs_emulator``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, TypedDict
from urllib.parse import urlsplit

import pytest

from ledgerd.platform.messaging import sqs
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.ports import (
    BrokerUnavailableError,
    EventRejectedError,
    Publisher,
    PublishError,
    Subscriber,
)
from ledgerd.platform.messaging.sqs import (
    SqsPublisher,
    SqsSubscriber,
    create_fifo_queue,
    deduplication_id,
    message_group_id,
)
from tests.fakes.tcp_proxy import TcpProxy
from tests.integration.messaging import contract
from tests.integration.messaging.contract import (
    BrokerUnderTest,
    assert_delivered_in_order,
    collect,
    envelopes,
    interleaved,
)
from tests.integration.messaging.sqs_emulator import (
    REGION,
    emulated_aws,
    message_counts,
    send_raw,
)


class _Bounds(TypedDict):
    connect_timeout_s: float
    read_timeout_s: float
    max_attempts: int


# So that an outage fails a call in a second or two: the proxy's cut refuses connections, so
# the connect bound decides. The read bound is wide because moto counts the whole queue on
# every call: one SendMessageBatch takes about 2 s with a thousand messages queued on this
# machine (more when it is busy), and a read bound below that fails every publish of the
# outbox test's backlog.
_SMALL_BOUNDS = _Bounds(connect_timeout_s=1.0, read_timeout_s=20.0, max_attempts=2)
_WAIT_S = 10.0  # for a condition the test waits on; a bound, not a measurement
_SQS_ID = re.compile(r"[!-~]{1,128}")  # SQS's rule for group and deduplication ids


@dataclass
class Queue:
    url: str
    direct: str  # the emulator's endpoint
    proxy: TcpProxy  # the adapter's way there, which a test can cut

    @property
    def via_proxy(self) -> str:
        return f"http://{self.proxy.address}"

    async def publisher(self) -> SqsPublisher:
        return await SqsPublisher.connect(
            self.url, region=REGION, endpoint_url=self.via_proxy, **_SMALL_BOUNDS
        )

    async def subscriber(self, *, direct: bool = False) -> SqsSubscriber:
        return await SqsSubscriber.connect(
            self.url,
            region=REGION,
            endpoint_url=self.direct if direct else self.via_proxy,
            wait_time_s=1,
            max_retry_delay_s=0.2,
            **_SMALL_BOUNDS,
        )

    async def counts(self) -> tuple[int, int]:
        return await message_counts(self.direct, self.url)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with emulated_aws(tmp_path_factory.mktemp("moto") / "server.log") as endpoint:
        yield endpoint


@pytest.fixture
async def queue(emulator: str) -> AsyncIterator[Queue]:
    port = urlsplit(emulator).port
    assert port is not None
    proxy = TcpProxy("127.0.0.1", port)
    await proxy.start()
    try:
        name = f"ledgerd-{uuid.uuid4().hex[:12]}.fifo"
        url = await create_fifo_queue(name, region=REGION, endpoint_url=emulator)
        yield Queue(url=url, direct=emulator, proxy=proxy)
    finally:
        await proxy.aclose()


@pytest.fixture
async def closing() -> AsyncIterator[AsyncExitStack]:
    """Closes what a test registers, whatever the test's outcome."""
    async with AsyncExitStack() as stack:
        yield stack


@pytest.fixture
def broker(queue: Queue) -> BrokerUnderTest:
    async def publisher() -> Publisher:
        return await queue.publisher()

    async def subscriber(_group: str) -> Subscriber:
        # A queue per check: no consumer group to name. The subscriber reaches moto directly,
        # so the contract's outages cut the publisher only: a long poll whose answer the
        # proxy drops goes on inside moto, and moto decides which FIFO groups are busy once
        # per call, so the client's retry can be handed a later message of a ledger whose
        # earlier ones the abandoned call took (SQS itself keeps the group locked). The
        # subscriber's side of an outage is test_receiving_goes_on_after_an_outage.
        return await queue.subscriber(direct=True)

    async def publish_raw(body: bytes, headers: Mapping[str, str]) -> None:
        await send_raw(queue.direct, queue.url, body, headers)

    return BrokerUnderTest(
        name="sqs (moto)",
        publisher=publisher,
        subscriber=subscriber,
        publish_raw=publish_raw,
        outage=queue.proxy.outage,
        # moto counts the whole queue on every call, so its cost grows with the square of
        # the backlog: 1,000 transfers took two minutes, 400 show the same adapter behaviour.
        outage_transfers=400,
    )


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


# --- SQS specifics ---------------------------------------------------------------------------


def _record_batches(publisher: SqsPublisher) -> list[list[str]]:
    """The deduplication ids of every SendMessageBatch the publisher makes, as sent."""
    batches: list[list[str]] = []

    def record(params: dict[str, Any], **_: Any) -> None:  # noqa: ANN401 - botocore's event
        batches.append([entry["MessageDeduplicationId"] for entry in params["Entries"]])

    publisher._client.meta.events.register("provide-client-params.sqs.SendMessageBatch", record)
    return batches


async def test_the_same_envelopes_twice_leave_one_copy_each(
    queue: Queue, closing: AsyncExitStack
) -> None:
    publisher = await queue.publisher()
    closing.push_async_callback(publisher.aclose)
    sent = envelopes("L1", 12)

    await publisher.publish(sent)
    await publisher.publish(sent)  # within SQS's 5 minutes: dropped by deduplication id

    assert await queue.counts() == (12, 0)


async def test_25_envelopes_go_out_as_10_10_5_in_order(
    queue: Queue, closing: AsyncExitStack
) -> None:
    subscriber = await queue.subscriber()
    closing.push_async_callback(subscriber.aclose)
    publisher = await queue.publisher()
    closing.push_async_callback(publisher.aclose)
    batches = _record_batches(publisher)
    sent = interleaved(envelopes("L1", 13), envelopes("L2", 12))

    await publisher.publish(sent)

    assert [len(batch) for batch in batches] == [10, 10, 5]
    assert [entry for batch in batches for entry in batch] == [e.id for e in sent]
    seen = await collect(subscriber, lambda seen: len(seen.unique) == len(sent))
    assert [envelope.id for envelope in seen.order] == [envelope.id for envelope in sent]


async def test_a_batch_stays_within_the_size_limit(queue: Queue, closing: AsyncExitStack) -> None:
    publisher = await queue.publisher()
    closing.push_async_callback(publisher.aclose)
    batches = _record_batches(publisher)
    # About 80 KiB each as an SQS message (base64 in JSON): three fit in 256 KiB, four do not.
    sent = [_with_data(envelope, 60 * 1024) for envelope in envelopes("L1", 5)]

    await publisher.publish(sent)

    assert [len(batch) for batch in batches] == [3, 2]
    assert await queue.counts() == (5, 0)


async def test_an_envelope_too_large_for_sqs_is_refused_after_those_before_it(
    queue: Queue, closing: AsyncExitStack
) -> None:
    publisher = await queue.publisher()
    closing.push_async_callback(publisher.aclose)
    first, second, third, fourth = envelopes("L1", 4)
    too_large = _with_data(third, 200 * 1024)  # about 267 KiB in base64

    with pytest.raises(EventRejectedError) as raised:
        await publisher.publish([first, second, too_large, fourth])

    assert raised.value.event_id == too_large.id
    assert await queue.counts() == (2, 0)  # the two before it, not the one after


@pytest.mark.parametrize(
    "ledger",
    [
        "ledger with spaces",
        "größe",
        "x" * 129,
        "tab\there",
        "sha256:" + "0" * 64,  # looks like a digest: digested too, so it cannot collide
        "",
    ],
)
def test_a_ledger_id_sqs_cannot_take_becomes_a_valid_group_id(ledger: str) -> None:
    group = message_group_id(ledger)

    assert _SQS_ID.fullmatch(group)
    assert group != ledger
    assert group == message_group_id(ledger)  # the same ledger, the same group, always


def test_a_ledger_id_sqs_takes_is_the_group_id_as_is() -> None:
    for ledger in ("acme.eur", "L1", "x" * 128, "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"):
        assert message_group_id(ledger) == ledger
    assert deduplication_id("0b7c52a6-5f0e-4f7c-9a51-7c1d2f4f5a10") == (
        "0b7c52a6-5f0e-4f7c-9a51-7c1d2f4f5a10"
    )


async def test_ledgers_with_ids_sqs_cannot_take_keep_their_order(
    queue: Queue, closing: AsyncExitStack
) -> None:
    # moto takes any group id, so this shows the round trip; the test above, the validity.
    subscriber = await queue.subscriber()
    closing.push_async_callback(subscriber.aclose)
    publisher = await queue.publisher()
    closing.push_async_callback(publisher.aclose)
    sent = interleaved(
        envelopes("ledger with spaces", 8), envelopes("größe", 8), envelopes("x" * 200, 8)
    )

    for start in range(0, len(sent), 6):
        await publisher.publish(sent[start : start + 6])

    seen = await collect(subscriber, lambda seen: len(seen.unique) == len(sent))
    assert_delivered_in_order(seen, sent)


async def test_a_nacked_message_comes_back_ahead_of_the_rest_of_its_ledger(
    queue: Queue, closing: AsyncExitStack
) -> None:
    subscriber = await queue.subscriber()
    closing.push_async_callback(subscriber.aclose)
    publisher = await queue.publisher()
    closing.push_async_callback(publisher.aclose)
    sent = envelopes("L1", 5)
    await publisher.publish(sent)

    seen = await collect(
        subscriber,
        lambda seen: len(seen.unique) == len(sent),
        nack_first=frozenset({sent[1].id}),
    )

    # Handled (acked) order: 1, 2, 3, 4, 5, although 3 to 5 came in the batch 2 was nacked in.
    assert seen.per_ledger() == {"L1": [1, 2, 3, 4, 5]}
    assert seen.deliveries == len(sent) + 1


async def test_messages_not_handed_out_go_back_when_the_iteration_stops(
    queue: Queue, closing: AsyncExitStack
) -> None:
    subscriber = await queue.subscriber()
    closing.push_async_callback(subscriber.aclose)
    publisher = await queue.publisher()
    closing.push_async_callback(publisher.aclose)
    await publisher.publish(envelopes("L1", 5))

    iterator = subscriber.deliveries()
    async with asyncio.timeout(_WAIT_S):
        first = await anext(iterator)
    await first.ack()
    await iterator.aclose()  # its batch held all five; four were never handed out

    assert await queue.counts() == (4, 0)  # visible again now, not after the timeout


async def test_receiving_goes_on_after_an_outage(queue: Queue, closing: AsyncExitStack) -> None:
    subscriber = await queue.subscriber()
    closing.push_async_callback(subscriber.aclose)
    iterator = subscriber.deliveries()
    closing.push_async_callback(iterator.aclose)
    sent = envelopes("L1", 1)

    async def next_envelope() -> Envelope | None:
        delivery = await anext(iterator)
        await delivery.ack()
        return delivery.envelope

    bypass = await SqsPublisher.connect(queue.url, region=REGION, endpoint_url=queue.direct)
    closing.push_async_callback(bypass.aclose)

    failed = _LogSignal("receiving from SQS failed")
    logger = logging.getLogger(sqs.__name__)
    logger.addHandler(failed)
    closing.callback(logger.removeHandler, failed)

    async with queue.proxy.outage():
        receiving = asyncio.create_task(next_envelope())
        async with asyncio.timeout(_WAIT_S):
            await failed.seen.wait()  # the subscriber has hit the outage and carries on
        await bypass.publish(sent)  # around the cut
    async with asyncio.timeout(_WAIT_S):
        assert await receiving == sent[0]


async def test_a_standard_queue_is_refused() -> None:
    with pytest.raises(ValueError, match="not a FIFO queue"):
        await SqsPublisher.connect(
            "https://sqs.eu-west-1.amazonaws.com/123456789012/events", region=REGION
        )


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        ({"Id": "0", "SenderFault": True, "Code": "InvalidParameterValue"}, EventRejectedError),
        ({"Id": "0", "SenderFault": True, "Code": "InvalidMessageContents"}, EventRejectedError),
        ({"Id": "0", "SenderFault": False, "Code": "InternalError"}, BrokerUnavailableError),
        ({"Id": "0", "SenderFault": True, "Code": "RequestThrottled"}, BrokerUnavailableError),
        ({"Id": "0", "SenderFault": True, "Code": "KmsAccessDenied"}, PublishError),
    ],
)
def test_a_failed_batch_entry_is_held_against_its_event_only_for_a_fault_of_its_own(
    failure: Any,  # noqa: ANN401 - an SQS BatchResultErrorEntry
    expected: type[PublishError],
) -> None:
    # moto fails no entry our publisher sends (see sqs_emulator): the mapping is checked here.
    envelope = envelopes("L1", 1)[0]

    error = sqs._entry_error(envelope, failure)

    assert type(error) is expected
    if isinstance(error, EventRejectedError):
        assert error.event_id == envelope.id


def _with_data(envelope: Envelope, size: int) -> Envelope:
    return dataclasses.replace(envelope, data=bytes(range(256)) * (size // 256))


class _LogSignal(logging.Handler):
    """Sets ``seen`` once a record containing ``text`` is logged."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.WARNING)
        self.seen = asyncio.Event()
        self._text = text

    def emit(self, record: logging.LogRecord) -> None:
        if self._text in record.getMessage():
            self.seen.set()


async def test_the_outbox_rides_out_an_outage(broker: BrokerUnderTest, sqlite_url: str) -> None:
    await contract.check_the_outbox_rides_out_an_outage(broker, sqlite_url)
