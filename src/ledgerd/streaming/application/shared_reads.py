"""One read of the log for subscribers that ask the same page at the same time.

Subscribers that fall behind together catch up together: after a restart every client resumes
from the event it last had, which for clients that were live is the same one, and each asks
the log for the same page (the same ledger, the same position, the buffer's size). Without
sharing, N of them are N identical queries queued for the pool, and N decodings of the same
rows. Here the first asker's read is everyone's while it runs: the others wait for it rather
than send their own, and each gets the same events (immutable, already shared by every
subscription they are offered to). Once the read is done it is forgotten: nothing is cached,
so an asker after it reads again and never gets an older answer than the log has.

A waiter that is cancelled (its client left) does not cancel the read the others wait for; a
read that fails fails for everyone who waited for it, each handling it as its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ledgerd.streaming.application.ports import EventLog
from ledgerd.streaming.domain.events import StreamEvent

_Page = tuple[str, int, int]  # ledger, after, limit


class SharedReads:
    """An ``EventLog`` whose concurrent identical ``read`` calls are one read of ``log``."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._reading: dict[_Page, asyncio.Future[Sequence[StreamEvent]]] = {}

    async def last_sequence(self, ledger: str) -> int | None:
        return await self._log.last_sequence(ledger)

    async def read(self, ledger: str, after: int, limit: int) -> Sequence[StreamEvent]:
        page = (ledger, after, limit)
        reading = self._reading.get(page)
        if reading is None:
            reading = asyncio.ensure_future(self._log.read(ledger, after, limit))
            self._reading[page] = reading
            reading.add_done_callback(lambda done: self._forget(page, done))
        # Shielded: one asker cancelled does not cancel the read the others wait for.
        return await asyncio.shield(reading)

    def _forget(self, page: _Page, done: asyncio.Future[Sequence[StreamEvent]]) -> None:
        if self._reading.get(page) is done:
            del self._reading[page]
