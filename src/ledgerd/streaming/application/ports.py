"""What the hub needs of the outside: the ledger's event log."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from ledgerd.streaming.domain.events import StreamEvent


class EventLog(Protocol):
    """Every event a ledger ever recorded, in order, readable from any position."""

    async def last_sequence(self, ledger: str) -> int | None:
        """The ledger's last event's sequence (0 before any); None for a ledger that is not."""
        ...

    async def read(self, ledger: str, after: int, limit: int) -> Sequence[StreamEvent]:
        """Up to ``limit`` events with a sequence above ``after``, in order."""
        ...

    async def last_sequences(self, ledgers: Collection[str]) -> Mapping[str, int]:
        """Each ledger's last event's sequence, in one question (a ledger that is not: absent)."""
        ...
