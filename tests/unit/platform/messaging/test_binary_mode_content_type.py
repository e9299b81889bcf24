"""Binary content mode keeps ``datacontenttype``: a consumer knows how to read the payload.

Each adapter's mapping is applied and read back without a broker; the brokers themselves are
exercised by the integration tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from ledgerd.platform.messaging import nats, rabbitmq, redis_streams
from ledgerd.platform.messaging.envelope import Envelope

PROTOBUF_EVENT = Envelope(
    id="6f1c2a52-3d7e-4d0b-9a51-2c1e0f7b9a10",
    source="/ledgerd/ledgers/books",
    type="ledgerd.v1.LedgerCreated",
    subject="ledgers/books",
    time=datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    ledger="books",
    sequence=1,
    data=b"\n\x07\n\x05books",
)
JSON_EVENT = replace(
    PROTOBUF_EVENT, data=b'{"ledger":{"id":"books"}}', datacontenttype="application/json"
)


def _through_nats(envelope: Envelope) -> Envelope:
    return nats.envelope_of(nats.message_headers(envelope), envelope.data)


def _through_rabbitmq(envelope: Envelope) -> Envelope:
    message = rabbitmq.message_of(envelope)
    assert message.content_type == envelope.datacontenttype  # the AMQP property, per binding
    return rabbitmq.envelope_of(message.body, message.headers, message.content_type)


def _through_redis(envelope: Envelope) -> Envelope:
    # Redis hands every field back as bytes.
    fields = {
        name.encode(): value if isinstance(value, bytes) else value.encode()
        for name, value in redis_streams.entry_fields(envelope).items()
    }
    return redis_streams.envelope_of(fields)


@pytest.mark.parametrize("envelope", [PROTOBUF_EVENT, JSON_EVENT], ids=["protobuf", "json"])
@pytest.mark.parametrize(
    "through",
    [_through_nats, _through_rabbitmq, _through_redis],
    ids=["nats", "rabbitmq", "redis"],
)
def test_the_content_type_and_payload_come_back(
    through: Callable[[Envelope], Envelope], envelope: Envelope
) -> None:
    received = through(envelope)
    assert received.datacontenttype == envelope.datacontenttype
    assert received == envelope
