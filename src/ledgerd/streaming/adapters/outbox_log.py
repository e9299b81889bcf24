"""The event log a stream reads: the outbox's ``outbox_events``, where every ledger event is kept.

Each event's accounts are read from its payload here, once per read, so that the hub's
filters never decode a payload. An event whose payload is not a ledger event (none today)
concerns no account: it still reaches the subscribers that filter by type only.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from ledgerd.ledger.published.events import (
    UnknownEventError,
    accounts_concerned,
    decode_envelope,
)
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.outbox.store import OutboxStore
from ledgerd.streaming.domain.events import StreamEvent


class OutboxEventLog:
    """``EventLog`` on the outbox's tables (a ledger is a stream of the outbox)."""

    def __init__(self, store: OutboxStore) -> None:
        self._store = store

    async def last_sequence(self, ledger: str) -> int | None:
        return await self._store.last_sequence(ledger)

    async def read(self, ledger: str, after: int, limit: int) -> Sequence[StreamEvent]:
        return [
            stream_event(envelope)
            for envelope in await self._store.read(ledger, after=after, limit=limit)
        ]

    async def last_sequences(self, ledgers: Collection[str]) -> Mapping[str, int]:
        return await self._store.last_sequences(ledgers)


def stream_event(envelope: Envelope) -> StreamEvent:
    try:
        accounts = accounts_concerned(decode_envelope(envelope))
    except UnknownEventError:
        accounts = frozenset()
    return StreamEvent(
        ledger=envelope.ledger,
        sequence=envelope.sequence,
        id=envelope.id,
        source=envelope.source,
        type=envelope.type,
        subject=envelope.subject,
        time=envelope.time,
        datacontenttype=envelope.datacontenttype,
        data=envelope.data,
        accounts=accounts,
    )
