"""A fake of the streaming context's event log: a ledger's events in a list, in memory.

The hub's own logic (the seam between catching up and live delivery, filters, backpressure)
is tested on it; the SQL log is tested against real databases in tests/integration/streaming.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime

from ledgerd.streaming.application.hub import StreamHub
from ledgerd.streaming.domain.events import StreamEvent

_TIME = datetime(2030, 1, 1, tzinfo=UTC)


class FakeEventLog:
    def __init__(self, *ledgers: str) -> None:
        self.events: dict[str, list[StreamEvent]] = {ledger: [] for ledger in ledgers}
        self.reads = 0
        self.last_sequences_asked = 0
        # Set to make reads wait (to interleave commits or cancellations with a read in flight).
        self.hold: asyncio.Event | None = None

    def append(
        self, ledger: str, *, type_: str = "ledgerd.v1.TransferPosted", accounts: Sequence[str] = ()
    ) -> StreamEvent:
        sequence = len(self.events[ledger]) + 1
        event = StreamEvent(
            ledger=ledger,
            sequence=sequence,
            id=f"{ledger}-{sequence}",
            source=f"/ledgers/{ledger}",
            type=type_,
            subject=f"transfers/t{sequence}",
            time=_TIME,
            datacontenttype="application/protobuf",
            data=b"payload-%d" % sequence,
            accounts=frozenset(accounts),
        )
        self.events[ledger].append(event)
        return event

    def commit(
        self,
        hub: StreamHub,
        ledger: str,
        count: int = 1,
        *,
        type_: str = "ledgerd.v1.TransferPosted",
        accounts: Sequence[str] = (),
    ) -> None:
        """Append ``count`` events and wake the hub, as a commit and its notification do."""
        for _ in range(count):
            self.append(ledger, type_=type_, accounts=accounts)
        hub.wake(ledger)

    async def last_sequence(self, ledger: str) -> int | None:
        if self.hold is not None:
            await self.hold.wait()
        events = self.events.get(ledger)
        return None if events is None else len(events)

    async def last_sequences(self, ledgers: Collection[str]) -> Mapping[str, int]:
        self.last_sequences_asked += 1
        if self.hold is not None:
            await self.hold.wait()
        return {ledger: len(self.events[ledger]) for ledger in ledgers if ledger in self.events}

    async def read(self, ledger: str, after: int, limit: int) -> Sequence[StreamEvent]:
        self.reads += 1
        snapshot = list(self.events[ledger][after : after + limit])
        if self.hold is not None:
            await self.hold.wait()
        return snapshot
