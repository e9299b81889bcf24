"""The ledger's event stream read back from the outbox and decoded into replay's facts.

Replay reads the stream as any consumer would: each envelope's payload is decoded as the
published ``ledgerd.v1`` message its ``type`` names (``ledger/published/events.py``), and only
what the message says becomes a fact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from ledgerd.ledger.application.ledger_events import (
    AccountChanged,
    AccountOpened,
    LedgerOpened,
    RecordedEntry,
    StreamedEvent,
    TransferRecorded,
    UnreadableEvent,
)
from ledgerd.ledger.domain.model import Balances, Layer, Side
from ledgerd.ledger.published.events import (
    ACCOUNT_MESSAGES,
    TRANSFER_MESSAGES,
    UnknownEventError,
    decode_envelope,
)
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.v1 import events_pb2 as events_pb
from ledgerd.v1 import ledger_pb2 as pb

_READ_CHUNK = 1000


class EventLog(Protocol):
    """Where the envelopes are kept: the outbox (``OutboxStore``), one stream per ledger."""

    async def read(self, stream: str, *, after: int = 0, limit: int = 1000) -> list[Envelope]:
        """Up to ``limit`` of a stream's events after sequence ``after``, in order."""
        ...


class OutboxLedgerEvents:
    """Implements ``LedgerEvents`` on the outbox, through the published decoders."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    async def stream(self, ledger_id: str) -> AsyncIterator[StreamedEvent]:
        after = 0
        while chunk := await self._log.read(ledger_id, after=after, limit=_READ_CHUNK):
            for envelope in chunk:
                yield _fact(envelope)
            after = chunk[-1].sequence


def _fact(envelope: Envelope) -> StreamedEvent:
    sequence = envelope.sequence
    try:
        message = decode_envelope(envelope)
    except UnknownEventError as error:
        return UnreadableEvent(sequence, str(error))
    if isinstance(message, events_pb.AccountCreated):
        return AccountOpened(sequence, message.account.id)
    if isinstance(message, ACCOUNT_MESSAGES):
        return AccountChanged(sequence, message.account.id)
    if isinstance(message, TRANSFER_MESSAGES):
        transfer = message.transfer
        entries = tuple(_entry(entry) for entry in message.entries)
        return TransferRecorded(sequence, transfer.id, transfer.sequence, entries)
    if isinstance(message, events_pb.LedgerCreated):
        return LedgerOpened(sequence)
    name = message.DESCRIPTOR.full_name
    return UnreadableEvent(sequence, f"{name} is not an event replay knows")


def _entry(entry: pb.Entry) -> RecordedEntry:
    after = entry.balance_after
    return RecordedEntry(
        account_id=entry.account,
        side=Side.DEBIT if entry.side == pb.Entry.DEBIT else Side.CREDIT,
        layer=Layer.POSTED if entry.layer == pb.Entry.POSTED else Layer.PENDING,
        amount=entry.amount,
        balances_after=Balances(
            posted_debits=after.posted_debits,
            posted_credits=after.posted_credits,
            pending_debits=after.pending_debits,
            pending_credits=after.pending_credits,
        ),
    )
