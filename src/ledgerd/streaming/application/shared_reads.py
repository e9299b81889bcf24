"""Subscribers' reads of the log while they catch up: shared when alike, a few at a time.

Subscribers that fall behind together catch up together: after a restart every client resumes
from the event it last had, which for clients that were live is the same one, and each asks
the log for the same page (the same ledger, the same position, the buffer's size). Without
sharing, N of them are N identical queries queued for the pool, and N decodings of the same
rows. Here the first asker's read is everyone's while it runs: the others wait for it rather
than send their own, and each gets the same events (immutable, already shared by every
subscription they are offered to). Once the read is done it is forgotten: nothing is cached,
so an asker after it reads again and never gets an older answer than the log has.

Reads that are not alike (subscribers resuming from different places) are at most
``most_at_once`` at a time; the others wait here, in order, for as long as it takes. Waiting
in the pool instead, a crowd of them would hold every connection (a posting would find none)
and give up after the pool's timeout, ending their streams with ``UNAVAILABLE`` for their
clients to retry into the same crowd.

A waiter that is cancelled (its client left) does not cancel the read the others wait for; a
read that fails fails for everyone who waited for it, each handling it as its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence

from ledgerd.streaming.application.ports import EventLog
from ledgerd.streaming.domain.events import StreamEvent

_Page = tuple[str, int, int]  # ledger, after, limit


class SharedReads:
    """An ``EventLog`` whose concurrent identical ``read`` calls are one read of ``log``.

    At most ``most_at_once`` reads of ``log`` run at a time (``last_sequence`` is not held).
    """

    def __init__(self, log: EventLog, *, most_at_once: int) -> None:
        self._log = log
        self._reading: dict[_Page, asyncio.Future[Sequence[StreamEvent]]] = {}
        self._turns = asyncio.Semaphore(most_at_once)

    async def last_sequence(self, ledger: str) -> int | None:
        return await self._log.last_sequence(ledger)

    async def last_sequences(self, ledgers: Collection[str]) -> Mapping[str, int]:
        return await self._log.last_sequences(ledgers)

    async def read(self, ledger: str, after: int, limit: int) -> Sequence[StreamEvent]:
        page = (ledger, after, limit)
        reading = self._reading.get(page)
        if reading is None:
            reading = asyncio.ensure_future(self._read_in_turn(ledger, after, limit))
            self._reading[page] = reading
            reading.add_done_callback(lambda done: self._forget(page, done))
        # Shielded: one asker cancelled does not cancel the read the others wait for.
        return await asyncio.shield(reading)

    async def _read_in_turn(self, ledger: str, after: int, limit: int) -> Sequence[StreamEvent]:
        async with self._turns:
            return await self._log.read(ledger, after, limit)

    def _forget(self, page: _Page, done: asyncio.Future[Sequence[StreamEvent]]) -> None:
        if self._reading.get(page) is done:
            del self._reading[page]
