"""The ledger's events into the platform outbox: one stream per ledger, protobuf payloads."""

from __future__ import annotations

from collections.abc import Sequence

from ledgerd.kernel.clock import Clock
from ledgerd.ledger.domain.events import LedgerEvent, ledger_of
from ledgerd.ledger.published.events import message_of, subject_of, time_of
from ledgerd.platform.outbox.writer import OutboxWriter, OutgoingEvent


def event_source(ledger_id: str) -> str:
    """The CloudEvents ``source`` of a ledger's events."""
    return f"/ledgerd/ledgers/{ledger_id}"


class SqlEventOutbox:
    """Implements ``EventOutbox``: each ledger's events, in order, after what it had."""

    def __init__(self, writer: OutboxWriter, clock: Clock) -> None:
        self._writer = writer
        self._clock = clock

    async def record(self, events: Sequence[LedgerEvent]) -> None:
        if not events:
            return
        now = self._clock.now()
        by_ledger: dict[str, list[OutgoingEvent]] = {}
        for event in events:
            message = message_of(event)
            by_ledger.setdefault(ledger_of(event), []).append(
                OutgoingEvent(
                    type=message.DESCRIPTOR.full_name,
                    subject=subject_of(event),
                    time=time_of(event) or now,
                    data=message.SerializeToString(),
                )
            )
        for ledger_id, outgoing in by_ledger.items():
            await self._writer.append(ledger_id, event_source(ledger_id), outgoing)
