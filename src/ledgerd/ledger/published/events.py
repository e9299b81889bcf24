"""The ledger's events as the messages of ``proto/ledgerd/v1/events.proto``, and back.

An event's CloudEvents ``type`` is its message's full name (``ledgerd.v1.TransferPosted``),
its ``subject`` the resource that changed (``ledgers/{id}``, ``accounts/{id}``,
``transfers/{id}``), its ``time`` when that happened where the domain knows it (creation
times; a status or metadata change happens when it is recorded).

The payload is the message's protobuf encoding as written to the outbox; a publisher may send
it in protobuf's JSON mapping instead (``with_json_payload``, ``json_payloads``), and
``decode`` reads either, as the envelope's ``datacontenttype`` says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from google.protobuf.json_format import ParseError
from google.protobuf.message import DecodeError, Message

from ledgerd.ledger.domain.events import (
    AccountClosed,
    AccountCreated,
    AccountFrozen,
    AccountMetadataChanged,
    AccountUnfrozen,
    LedgerCreated,
    LedgerEvent,
    PendingCaptured,
    PendingCreated,
    PendingExpired,
    PendingVoided,
    TransferEvent,
    TransferPosted,
    TransferReversed,
)
from ledgerd.ledger.published import protobuf as render
from ledgerd.ledger.published.json_payloads import parse_json, render_json
from ledgerd.platform.messaging.envelope import JSON, PROTOBUF, Envelope, media_type
from ledgerd.v1 import events_pb2 as events_pb

# The account events' messages hold one Account, the transfer events' a Transfer and its
# entries; readers tell the two shapes apart by these (literal tuples: type checkers narrow).
ACCOUNT_MESSAGES = (
    events_pb.AccountCreated,
    events_pb.AccountMetadataChanged,
    events_pb.AccountFrozen,
    events_pb.AccountUnfrozen,
    events_pb.AccountClosed,
)
TRANSFER_MESSAGES = (
    events_pb.TransferPosted,
    events_pb.PendingCreated,
    events_pb.PendingCaptured,
    events_pb.PendingVoided,
    events_pb.PendingExpired,
    events_pb.TransferReversed,
)
# Domain event -> its message, in the same order as the tuples above.
_ACCOUNT_EVENTS: dict[type, Callable[..., Message]] = dict(
    zip(
        (AccountCreated, AccountMetadataChanged, AccountFrozen, AccountUnfrozen, AccountClosed),
        ACCOUNT_MESSAGES,
        strict=True,
    )
)
_TRANSFER_EVENTS: dict[type, Callable[..., Message]] = dict(
    zip(
        (
            TransferPosted,
            PendingCreated,
            PendingCaptured,
            PendingVoided,
            PendingExpired,
            TransferReversed,
        ),
        TRANSFER_MESSAGES,
        strict=True,
    )
)
MESSAGES: dict[str, type[Message]] = {
    message.DESCRIPTOR.full_name: message
    for message in (events_pb.LedgerCreated, *ACCOUNT_MESSAGES, *TRANSFER_MESSAGES)
}


class UnknownEventError(ValueError):
    """An envelope whose type or payload is not one of the ledger's events."""


def message_of(event: LedgerEvent) -> Message:
    """The event's payload; its ``DESCRIPTOR.full_name`` is the envelope's ``type``."""
    match event:
        case LedgerCreated(ledger=ledger):
            return events_pb.LedgerCreated(ledger=render.ledger(ledger))
        case (
            AccountCreated()
            | AccountMetadataChanged()
            | AccountFrozen()
            | AccountUnfrozen()
            | AccountClosed()
        ):
            return _ACCOUNT_EVENTS[type(event)](account=render.account(event.account))
        case _:
            return _TRANSFER_EVENTS[type(event)](**_transfer_fields(event))


def _transfer_fields(event: TransferEvent) -> dict[str, Any]:
    return {
        "transfer": render.transfer(event.transfer),
        "entries": [
            render.entry(entry, event.normal_sides[entry.account_id]) for entry in event.entries
        ],
    }


def subject_of(event: LedgerEvent) -> str:
    match event:
        case LedgerCreated(ledger=ledger):
            return f"ledgers/{ledger.id}"
        case (
            AccountCreated()
            | AccountMetadataChanged()
            | AccountFrozen()
            | AccountUnfrozen()
            | AccountClosed()
        ):
            return f"accounts/{event.account.id}"
        case _:
            return f"transfers/{event.transfer.id}"


def time_of(event: LedgerEvent) -> datetime | None:
    """When it happened, if the event itself says: creations do; later changes do not."""
    match event:
        case LedgerCreated(ledger=ledger):
            return ledger.created_at
        case AccountCreated(account=account):
            return account.created_at
        case AccountMetadataChanged() | AccountFrozen() | AccountUnfrozen() | AccountClosed():
            return None
        case _:
            return event.transfer.created_at


def decode(event_type: str, data: bytes, *, content_type: str = PROTOBUF) -> Message:
    """The payload of an envelope of type ``event_type``, or UnknownEventError.

    ``content_type`` is the envelope's ``datacontenttype``: ``application/protobuf`` (what the
    outbox holds) or ``application/json`` (protobuf's JSON mapping); parameters such as
    ``; charset=utf-8`` are ignored. Any other content type is refused.
    """
    message_class = MESSAGES.get(event_type)
    if message_class is None:
        msg = f"not a ledger event type: {event_type!r}"
        raise UnknownEventError(msg)
    kind = media_type(content_type)
    if kind not in {PROTOBUF, JSON}:
        msg = (
            f"{event_type} payload has content type {content_type!r}; "
            f"ledger events are {PROTOBUF} or {JSON}"
        )
        raise UnknownEventError(msg)
    message = message_class()
    try:
        if kind == PROTOBUF:
            message.ParseFromString(data)
        else:
            parse_json(data, message)
    except (DecodeError, ParseError) as error:
        msg = f"{event_type} payload does not parse as {kind}: {error}"
        raise UnknownEventError(msg) from error
    return message


def decode_envelope(envelope: Envelope) -> Message:
    """The payload of ``envelope``, read as its ``datacontenttype`` says; UnknownEventError."""
    return decode(envelope.type, envelope.data, content_type=envelope.datacontenttype)


def with_json_payload(envelope: Envelope) -> Envelope:
    """``envelope`` with its payload in protobuf's JSON mapping, every other attribute kept.

    An envelope already in JSON is returned as it is; one that is not a ledger event raises
    UnknownEventError.
    """
    if media_type(envelope.datacontenttype) == JSON:
        return envelope
    return replace(envelope, data=render_json(decode_envelope(envelope)), datacontenttype=JSON)


def accounts_concerned(message: Message) -> frozenset[str]:
    """The accounts an event is about: its account, or every account its transfer's entries touch.

    What a subscriber filtering by account is shown (streams, webhooks): a transfer concerns
    each account it wrote an entry on; a ledger's creation concerns none.
    """
    if isinstance(message, ACCOUNT_MESSAGES):
        return frozenset((message.account.id,))
    if isinstance(message, TRANSFER_MESSAGES):
        return frozenset(entry.account for entry in message.entries)
    return frozenset()
