"""The CloudEvents envelope: both content modes round-trip; anything else is refused, named."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ledgerd.platform.messaging.envelope import (
    JSON,
    Envelope,
    MalformedEventError,
    canonical_json,
    is_json,
    media_type,
)

ENVELOPE = Envelope(
    id="6f1c2a52-3d7e-4d0b-9a51-2c1e0f7b9a10",
    source="/ledgerd/ledgers/books",
    type="ledgerd.v1.TransferPosted",
    subject="transfers/t-1",
    time=datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    ledger="books",
    sequence=42,
    data=bytes(range(256)),
)


def test_binary_mode_round_trips_and_names_every_attribute() -> None:
    attributes = ENVELOPE.attributes()
    assert attributes == {
        "specversion": "1.0",
        "id": ENVELOPE.id,
        "source": "/ledgerd/ledgers/books",
        "type": "ledgerd.v1.TransferPosted",
        "subject": "transfers/t-1",
        "time": "2030-01-02T03:04:05.123456Z",
        "datacontenttype": "application/protobuf",
        "partitionkey": "books",
        "sequence": "00000000000000000042",
    }
    assert Envelope.from_attributes(attributes, ENVELOPE.data) == ENVELOPE


def test_sequences_order_as_strings_the_way_the_extension_compares_them() -> None:
    small = Envelope.attributes(_with(sequence=9))["sequence"]
    large = Envelope.attributes(_with(sequence=10))["sequence"]
    assert small < large


def test_structured_mode_round_trips() -> None:
    document = json.loads(ENVELOPE.to_json())
    assert document["partitionkey"] == "books"
    assert "data" not in document
    assert Envelope.from_json(ENVELOPE.to_json()) == ENVELOPE


def test_a_time_with_another_offset_is_the_same_instant() -> None:
    attributes = {**ENVELOPE.attributes(), "time": "2030-01-02T05:04:05.123456+02:00"}
    assert Envelope.from_attributes(attributes, b"").time == ENVELOPE.time
    assert Envelope.from_attributes(attributes, b"").time.tzinfo == UTC
    assert _with(time=ENVELOPE.time.astimezone(timezone(timedelta(hours=-5)))).attributes()[
        "time"
    ] == ("2030-01-02T03:04:05.123456Z")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"id": ""}, "missing CloudEvents attributes: id"),
        ({"specversion": "0.3"}, "unsupported specversion"),
        ({"sequence": "-1"}, "sequence is not a decimal number"),
        ({"sequence": "0"}, "sequence starts at 1"),
        ({"sequence": "٣"}, "sequence is not a decimal number"),  # a non-ASCII digit
        ({"time": "yesterday"}, "time is not RFC 3339"),
        ({"time": "2030-01-02T03:04:05"}, "time has no offset"),
        ({"subject": "x" * 5000}, "longer than 4096"),
    ],
)
def test_a_bad_attribute_is_refused_with_its_reason(change: dict[str, str], reason: str) -> None:
    with pytest.raises(MalformedEventError, match=reason):
        Envelope.from_attributes({**ENVELOPE.attributes(), **change}, b"")


def test_missing_attributes_are_all_named() -> None:
    attributes = ENVELOPE.attributes()
    del attributes["partitionkey"], attributes["time"]
    with pytest.raises(MalformedEventError, match="time, partitionkey"):
        Envelope.from_attributes(attributes, b"")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "not a JSON document"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"id": 1}', "every attribute of a ledgerd event is a string"),
        (json.dumps(ENVELOPE.attributes()).encode(), "no payload: neither data nor data_base64"),
        (
            json.dumps({**ENVELOPE.attributes(), "data": {}, "data_base64": ""}).encode(),
            "both data and data_base64",
        ),
        (
            json.dumps({**ENVELOPE.attributes(), "data": {"a": 1}}).encode(),
            "data is a JSON object but datacontenttype is 'application/protobuf', which is not",
        ),
        (
            json.dumps({**ENVELOPE.attributes(), "data_base64": 7}).encode(),
            "data_base64 is not a string",
        ),
        (
            json.dumps({**ENVELOPE.attributes(), "data": {}, "datacontenttype": 7}).encode(),
            "every attribute of a ledgerd event is a string",
        ),
        (
            json.dumps({**ENVELOPE.attributes(), "data_base64": "not base64!"}).encode(),
            "data_base64 is not base64",
        ),
    ],
)
def test_a_bad_structured_event_is_refused_with_its_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedEventError, match=reason):
        Envelope.from_json(raw)


# A JSON payload as ledgerd publishes it: canonical JSON (sorted keys, compact, UTF-8).
JSON_PAYLOAD = {"transfer": {"amount": "500", "id": "t-1", "metadata": {"note": "café"}}}


def test_structured_mode_puts_a_json_payload_in_data_as_the_value_itself() -> None:
    envelope = _with(data=canonical_json(JSON_PAYLOAD), datacontenttype=JSON)
    document = json.loads(envelope.to_json())
    assert document["data"] == JSON_PAYLOAD  # a JSON object, not a string holding one
    assert "data_base64" not in document
    assert document["datacontenttype"] == "application/json"
    # Everything but the payload is as in protobuf's document.
    binary = json.loads(ENVELOPE.to_json())
    assert {k: v for k, v in document.items() if k not in {"data", "datacontenttype"}} == {
        k: v for k, v in binary.items() if k not in {"data_base64", "datacontenttype"}
    }
    assert Envelope.from_json(envelope.to_json()) == envelope  # byte for byte


def test_a_json_payload_read_from_data_is_made_canonical() -> None:
    document = {**ENVELOPE.attributes(), "datacontenttype": JSON}
    raw = json.dumps({**document, "data": {"b": [1, 2], "a": "é"}}, indent=4, ensure_ascii=True)
    envelope = Envelope.from_json(raw)
    assert envelope.data == '{"a":"é","b":[1,2]}'.encode()
    assert envelope.datacontenttype == JSON


def test_data_without_a_datacontenttype_is_json_as_the_format_says() -> None:
    document = {k: v for k, v in ENVELOPE.attributes().items() if k != "datacontenttype"}
    envelope = Envelope.from_json(json.dumps({**document, "data": {"x": "1"}}))
    assert (envelope.datacontenttype, envelope.data) == (JSON, b'{"x":"1"}')


def test_a_text_payload_in_data_is_a_json_string() -> None:
    document = {**ENVELOPE.attributes(), "datacontenttype": "text/plain", "data": "héllo"}
    assert Envelope.from_json(json.dumps(document)).data == "héllo".encode()


def test_a_payload_labelled_json_that_is_not_json_travels_as_base64() -> None:
    envelope = _with(data=b"\xffnot json", datacontenttype=JSON)
    document = json.loads(envelope.to_json())
    assert "data" not in document
    assert Envelope.from_json(envelope.to_json()) == envelope


@pytest.mark.parametrize(
    ("content_type", "kind", "json_text"),
    [
        ("application/json", "application/json", True),
        ("Application/JSON; charset=utf-8", "application/json", True),
        ("application/vnd.ledgerd+json", "application/vnd.ledgerd+json", True),
        ("application/protobuf", "application/protobuf", False),
        ("text/plain ; charset=us-ascii", "text/plain", False),
    ],
)
def test_content_types_are_compared_by_media_type(
    content_type: str, kind: str, *, json_text: bool
) -> None:
    assert media_type(content_type) == kind
    assert is_json(content_type) is json_text


def test_canonical_json_is_the_same_bytes_whatever_the_key_order() -> None:
    assert canonical_json({"b": 1, "a": {"d": "ü", "c": None}}) == canonical_json(
        {"a": {"c": None, "d": "ü"}, "b": 1}
    )
    assert canonical_json({"a": "ü"}) == '{"a":"ü"}'.encode()


def _with(**changes: object) -> Envelope:
    fields = {
        name: getattr(ENVELOPE, name)
        for name in ("id", "source", "type", "subject", "time", "ledger", "sequence", "data")
    }
    return Envelope(**{**fields, **changes})
