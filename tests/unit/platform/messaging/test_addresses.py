"""Broker addresses are stored and shown without their credentials."""

import pytest

from ledgerd.platform.messaging.addresses import without_credentials


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("nats://relay:s3cret@127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("nats://t0ken@nats.internal", "nats://nats.internal"),
        ("amqp://guest:guest@127.0.0.1:5672/%2F", "amqp://127.0.0.1:5672/%2F"),
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("rediss://u:p@[::1]:6380/2?ssl_cert_reqs=none", "rediss://[::1]:6380/2"),
        ("https://sqs.local/q?X-Amz-Security-Token=s3cret", "https://sqs.local/q"),
        ("127.0.0.1:9092", "127.0.0.1:9092"),
        ("u:s3cret@k1:9092, k2:9092", "k1:9092,k2:9092"),
        ("orders", "orders"),
    ],
)
def test_credentials_are_left_out(address: str, shown: str) -> None:
    assert without_credentials(address) == shown
