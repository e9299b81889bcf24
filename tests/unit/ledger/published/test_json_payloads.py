"""JSON payloads: every event reads back as the protobuf message; the JSON itself is fixed."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from google.protobuf.message import Message

from ledgerd.ledger.published.events import (
    MESSAGES,
    UnknownEventError,
    decode,
    decode_envelope,
    message_of,
    with_json_payload,
)
from ledgerd.ledger.published.json_payloads import render_json
from ledgerd.platform.messaging.envelope import JSON, PROTOBUF, Envelope
from ledgerd.v1 import events_pb2 as events_pb
from ledgerd.v1 import ledger_pb2 as pb
from tests.unit.ledger.published.every_event import NOW, envelope_of, every_event


async def test_every_kind_of_event_decodes_from_json_to_its_protobuf_message() -> None:
    events = await every_event()
    decoded: dict[str, list[Message]] = {}
    for sequence, event in enumerate(events, start=1):
        stored = envelope_of(event, sequence)
        published = with_json_payload(stored)
        assert published.datacontenttype == "application/json"
        from_json = decode(published.type, published.data, content_type=JSON)
        assert from_json == decode(stored.type, stored.data) == message_of(event)
        assert decode_envelope(published) == from_json
        decoded.setdefault(published.type, []).append(from_json)
    assert decoded.keys() == MESSAGES.keys()  # every event type, none left out
    # Not vacuous: the messages compared carry the event's content.
    (posted,) = decoded["ledgerd.v1.TransferPosted"]
    assert isinstance(posted, events_pb.TransferPosted)
    assert [(entry.account, entry.amount) for entry in posted.entries] == [
        ("bank", 500),
        ("alice", 500),
    ]
    bank = decoded["ledgerd.v1.AccountCreated"][0]
    assert isinstance(bank, events_pb.AccountCreated)
    assert bank.account.id == "bank"
    assert dict(bank.account.metadata) == {"zone": "eu", "name": "Banque Crédit"}
    (changed,) = decoded["ledgerd.v1.AccountMetadataChanged"]
    assert isinstance(changed, events_pb.AccountMetadataChanged)
    assert changed.account.id == "bank"
    assert dict(changed.account.metadata) == {"zone": "us", "desk": "Trésorerie"}


async def test_the_json_uses_the_proto_names_int64_strings_and_enum_names() -> None:
    events = await every_event()
    posted = next(e for e in events if type(e).__name__ == "TransferPosted")
    document = json.loads(with_json_payload(envelope_of(posted, 4)).data)

    transfer = document["transfer"]
    assert transfer["idempotency_key"] == "p"
    assert transfer["sequence"] == "1"  # int64: a string
    assert transfer["status"] == "POSTED"
    assert transfer["created_at"].endswith("Z")
    assert "expires_at" not in transfer  # has presence, and is unset
    assert transfer["target_id"] == ""  # no presence: written even when empty
    entry = document["entries"][0]
    assert isinstance(entry["amount"], str)
    assert isinstance(entry["balance_after"]["posted_debits"], str)
    assert entry["layer"] == "POSTED"
    assert not _camel_case_keys(document)


def test_int64_beyond_what_a_double_holds_survives() -> None:
    big = 2**62 + 1
    message = events_pb.TransferPosted(entries=[pb.Entry(amount=big, sequence=big)])
    document = json.loads(render_json(message))
    assert document["entries"][0]["amount"] == str(big)
    assert decode("ledgerd.v1.TransferPosted", render_json(message), content_type=JSON) == message


def test_the_same_message_is_always_the_same_bytes() -> None:
    one = pb.Account(id="a", metadata={"zone": "eu", "name": "Crédit", "b": "2"})
    other = pb.Account(id="a", metadata={"b": "2", "name": "Crédit", "zone": "eu"})
    rendered = render_json(events_pb.AccountCreated(account=one))
    assert rendered == render_json(events_pb.AccountCreated(account=other))
    assert b'"metadata":{"b":"2","name":"Cr\xc3\xa9dit","zone":"eu"}' in rendered  # sorted, UTF-8
    assert b" " not in rendered.replace(b"Cr\xc3\xa9dit", b"")  # compact


async def test_with_json_payload_keeps_every_other_attribute() -> None:
    (created, *_) = await every_event()
    stored = envelope_of(created, 1)
    published = with_json_payload(stored)
    assert published == replace(stored, data=published.data, datacontenttype="application/json")
    assert with_json_payload(published) is published  # already JSON: left alone


def test_with_json_payload_refuses_what_is_not_a_ledger_event() -> None:
    stored = replace(_any_envelope(), type="ledgerd.v1.Nonsense")
    with pytest.raises(UnknownEventError, match="not a ledger event type"):
        with_json_payload(stored)


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON"],
)
def test_decode_reads_json_whatever_the_parameters_and_case(content_type: str) -> None:
    data = b'{"ledger": {"id": "books", "created_at": "2030-01-02T03:04:05.123456Z"}}'
    message = decode("ledgerd.v1.LedgerCreated", data, content_type=content_type)
    assert isinstance(message, events_pb.LedgerCreated)
    assert message.ledger.id == "books"
    assert message.ledger.created_at.ToJsonString() == "2030-01-02T03:04:05.123456Z"


def test_decode_also_reads_the_proto_field_names_and_ignores_unknown_fields() -> None:
    data = b'{"account": {"id": "a", "overdraft_limit": "1", "from_the_future": 1}, "x": []}'
    message = decode("ledgerd.v1.AccountCreated", data, content_type=JSON)
    assert message == events_pb.AccountCreated(account=pb.Account(id="a"))


@pytest.mark.parametrize(
    ("content_type", "reason"),
    [
        ("text/plain", "content type 'text/plain'; ledger events are application/protobuf or"),
        ("application/cloudevents+json", "content type 'application/cloudevents+json'"),
        ("", "content type ''"),
    ],
)
def test_decode_refuses_an_unknown_content_type(content_type: str, reason: str) -> None:
    data = render_json(events_pb.LedgerCreated())
    with pytest.raises(UnknownEventError, match=re.escape(reason)):
        decode("ledgerd.v1.LedgerCreated", data, content_type=content_type)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{", "not a JSON document"),
        (b"\xff{}", "not a JSON document"),
        (b'["ledger"]', "not a JSON object"),
        (b'"ledger"', "not a JSON object"),
        (b'{"ledger": 5}', "Failed to parse ledger field"),
        (b'{"ledger": {"created_at": "yesterday"}}', "Failed to parse created_at field"),
    ],
)
def test_decode_refuses_json_that_is_not_the_message(data: bytes, reason: str) -> None:
    with pytest.raises(
        UnknownEventError, match=f"ledgerd.v1.LedgerCreated payload does not parse as {JSON}"
    ) as refused:
        decode("ledgerd.v1.LedgerCreated", data, content_type=JSON)
    assert reason in str(refused.value)


def test_protobuf_stays_the_default_content_type() -> None:
    message = events_pb.LedgerCreated(ledger=pb.Ledger(id="books"))
    assert decode("ledgerd.v1.LedgerCreated", message.SerializeToString()) == message
    with pytest.raises(UnknownEventError, match=f"does not parse as {PROTOBUF}"):
        decode("ledgerd.v1.LedgerCreated", b"\xff\xff")


def _camel_case_keys(value: object) -> list[str]:
    """Keys with a capital letter, anywhere but inside metadata maps (whose keys are data)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key != key.lower():
                found.append(key)
            if key != "metadata":
                found += _camel_case_keys(item)
    elif isinstance(value, list):
        for item in value:
            found += _camel_case_keys(item)
    return found


def _any_envelope() -> Envelope:
    message = events_pb.LedgerCreated(ledger=pb.Ledger(id="books"))
    return Envelope(
        id="e1",
        source="/ledgerd/ledgers/books",
        type="ledgerd.v1.LedgerCreated",
        subject="ledgers/books",
        time=NOW,
        ledger="books",
        sequence=1,
        data=message.SerializeToString(),
    )
