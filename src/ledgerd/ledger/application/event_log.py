"""The port through which the ledger reads its own published events back (for replay)."""

from __future__ import annotations

from typing import Protocol

from ledgerd.platform.messaging.envelope import Envelope


class EventLog(Protocol):
    async def read(self, stream: str, *, after: int = 0, limit: int = 1000) -> list[Envelope]:
        """Up to ``limit`` of a ledger's events after sequence ``after``, in order."""
        ...
