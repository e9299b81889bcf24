"""The publisher the settings choose names its broker in log lines, never its credentials."""

import pytest

from ledgerd.main.publishers import build_publisher
from ledgerd.main.settings import Settings
from ledgerd.platform.messaging.hub import InProcessHub
from ledgerd.platform.messaging.lazy import ConnectingPublisher


def _connecting(settings: Settings) -> ConnectingPublisher:
    # protobuf payloads: build_publisher hands back the broker's own publisher, unwrapped.
    publisher = build_publisher(settings, InProcessHub())
    assert isinstance(publisher, ConnectingPublisher)
    return publisher


@pytest.mark.parametrize(
    ("publisher", "setting", "url", "shown"),
    [
        ("nats", "nats_url", "nats://relay:s3cret@127.0.0.1:4222", "NATS at nats://127.0.0.1:4222"),
        (
            "rabbitmq",
            "rabbitmq_url",
            "amqp://guest:s3cret@127.0.0.1:5672/",
            "RabbitMQ at amqp://127.0.0.1:5672/",
        ),
        (
            "redis",
            "redis_url",
            "redis://:s3cret@127.0.0.1:6379/0",
            "Redis at redis://127.0.0.1:6379/0",
        ),
    ],
)
def test_the_broker_is_named_without_the_password_its_url_carries(
    publisher: str, setting: str, url: str, shown: str
) -> None:
    settings = Settings.model_validate({"events_publisher": publisher, setting: url})

    name = _connecting(settings).name

    assert name == shown
    assert "s3cret" not in name
