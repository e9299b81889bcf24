"""A publisher that cannot connect fails like an outage, and connects once it can."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio

from ledgerd.ledger.adapters.json_publisher import JsonPayloadPublisher
from ledgerd.main.publishers import build_publisher
from ledgerd.main.settings import Settings
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.hub import InProcessHub
from ledgerd.platform.messaging.lazy import ConnectingPublisher
from ledgerd.platform.messaging.ports import BrokerUnavailableError, Publisher
from tests.integration.messaging.test_nats import NatsBroker, _stream_state, shared_nats
from tests.integration.messaging.test_redis_streams import admin, stream

__all__ = ["admin", "shared_nats", "stream"]  # fixtures of the broker modules, used here

EVENT = Envelope(
    id="e1",
    source="/ledgerd/ledgers/L",
    type="ledgerd.v1.LedgerCreated",
    subject="ledgers/L",
    time=datetime(2030, 1, 1, tzinfo=UTC),
    ledger="L",
    sequence=1,
    data=b"",
)


async def test_no_connection_is_an_outage_until_there_is_one() -> None:
    hub = InProcessHub()
    subscription = hub.subscribe()
    attempts: list[int] = []

    async def connect() -> Publisher:
        attempts.append(1)
        if len(attempts) < 3:
            msg = "Connect call failed ('127.0.0.1', 4222)"
            raise ConnectionRefusedError(msg)
        return hub

    publisher = ConnectingPublisher("a broker", connect)
    for _ in range(2):
        with pytest.raises(BrokerUnavailableError, match="cannot connect to a broker"):
            await publisher.publish([EVENT])
    await publisher.publish([EVENT])
    await publisher.publish([EVENT])  # connected once, kept
    assert len(attempts) == 3
    assert subscription.channel.drain() == [EVENT, EVENT]
    await publisher.aclose()


@pytest.mark.parametrize("choice", ["nats", "kafka", "rabbitmq", "redis", "sqs"])
async def test_a_broker_chosen_in_settings_is_connected_only_when_publishing(
    choice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Credentials present (as in any real deployment), so what fails is reaching the endpoint.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    hub = InProcessHub()
    unreachable = {
        "nats_url": "nats://127.0.0.1:9",
        "kafka_bootstrap_servers": "127.0.0.1:9",
        "rabbitmq_url": "amqp://guest:guest@127.0.0.1:9/",
        "redis_url": "redis://127.0.0.1:9/0",
        "sqs_queue": "http://127.0.0.1:9/000000000000/ledgerd-events.fifo",
        "sqs_endpoint_url": "http://127.0.0.1:9",
    }
    settings = Settings.model_validate({"events_publisher": choice, **unreachable})
    publisher = build_publisher(settings, hub)
    assert isinstance(publisher, ConnectingPublisher)  # building it contacted nothing
    with pytest.raises(BrokerUnavailableError):
        await publisher.publish([EVENT])
    await publisher.aclose()


def test_the_default_is_the_in_process_hub() -> None:
    hub = InProcessHub()
    assert build_publisher(Settings(), hub) is hub


def test_json_payloads_wrap_the_chosen_publisher_hub_included() -> None:
    hub = InProcessHub()
    to_hub = build_publisher(Settings(events_format="json"), hub)
    assert isinstance(to_hub, JsonPayloadPublisher)
    assert to_hub.inner is hub
    to_nats = build_publisher(Settings(events_format="json", events_publisher="nats"), hub)
    assert isinstance(to_nats, JsonPayloadPublisher)
    assert isinstance(to_nats.inner, ConnectingPublisher)


def test_the_format_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERD_EVENTS_FORMAT", "json")
    assert Settings().events_format == "json"
    monkeypatch.setenv("LEDGERD_EVENTS_FORMAT", "xml")
    with pytest.raises(ValueError, match="events_format"):
        Settings()


async def test_the_nats_stream_and_subjects_come_from_the_settings(shared_nats: NatsBroker) -> None:
    names = shared_nats.names
    settings = Settings(
        events_publisher="nats",
        nats_url=shared_nats.url,
        nats_stream=names.stream,
        nats_subject_prefix=names.prefix,
    )
    publisher = build_publisher(settings, InProcessHub())
    try:
        await publisher.publish([EVENT])
    finally:
        await publisher.aclose()
    assert await _stream_state(shared_nats) == (1, {f"{names.prefix}.L": 1})


async def test_the_redis_stream_comes_from_the_settings(
    admin: redis.asyncio.Redis, stream: str
) -> None:
    settings = Settings(events_publisher="redis", redis_stream=stream)
    publisher = build_publisher(settings, InProcessHub())
    try:
        await publisher.publish([EVENT])
    finally:
        await publisher.aclose()
    entries: Any = await admin.xrange(stream)  # redis-py types its replies loosely
    assert [fields[b"ce-id"] for _, fields in entries] == [EVENT.id.encode()]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LEDGERD_NATS_STREAM", "events.v1"),  # no dots in a stream name
        ("LEDGERD_NATS_SUBJECT_PREFIX", "ledgerd.*"),  # no wildcards in a subject
        ("LEDGERD_NATS_SUBJECT_PREFIX", "ledgerd..events"),  # no empty token
        ("LEDGERD_KAFKA_TOPIC", "ledgerd events"),
        ("LEDGERD_RABBITMQ_EXCHANGE", "ledgerd/events"),
        ("LEDGERD_REDIS_STREAM", ""),
    ],
)
def test_a_name_the_broker_would_refuse_is_refused_at_start_up(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable.removeprefix("LEDGERD_").lower()):
        Settings()
