"""One subscriber's view of a ledger's events: catching up from the log, then live.

A subscription hands out the matching events after its starting position, in order, each
once. It starts **catching up**: it reads the log itself, a page at a time and only when its
buffer is empty (so a subscriber that does not read costs at most one page). It turns **live**
when it has read as far as its ledger's feed has dispatched: from then on the feed offers it
each new event as it dispatches it. The switch happens between two awaits, so nothing the
feed dispatches can fall between the last page read and the first event offered: everything
up to the feed's position is in the log, everything after it will be offered, and an event
seen twice (read from the log and offered) is recognised by its sequence.

**Backpressure.** A live subscription's buffer holds at most ``capacity`` events. An offer
that finds it full is not queued: the subscription leaves the live set and, once its reader
has emptied the buffer, catches up from the log again, from the last event it kept. The
feed never waits for a subscriber and no subscriber's memory grows past its bound; a slow
reader only gets its events later, from the log, in the same order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ledgerd.streaming.application.ports import EventLog
from ledgerd.streaming.domain.errors import StreamEndedError
from ledgerd.streaming.domain.events import StreamEvent, StreamFilter

if TYPE_CHECKING:
    from ledgerd.streaming.application.hub import LedgerFeed


class Subscription:
    """The matching events of one ledger after a position; iterate it, close it when done."""

    __slots__ = (
        "_buffer",
        "_capacity",
        "_ended_because",
        "_feed",
        "_log",
        "_waiter",
        "delivered",
        "filter",
        "lagged",
        "live",
        "scanned",
    )

    def __init__(
        self,
        feed: LedgerFeed,
        log: EventLog,
        stream_filter: StreamFilter,
        after: int,
        capacity: int,
    ) -> None:
        self._feed = feed
        self._log = log
        self.filter = stream_filter
        self._capacity = capacity
        self._buffer: deque[StreamEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended_because: str | None = None
        # The last sequence looked at (from the log or offered), matching or not.
        self.scanned = after
        # The last sequence handed to the reader: where a resumed subscription starts.
        self.delivered = after
        self.live = False
        # How many times the reader fell a whole buffer behind and was moved to the log.
        self.lagged = 0

    @property
    def ledger(self) -> str:
        return self._feed.ledger

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self

    async def __anext__(self) -> StreamEvent:
        while True:
            if self._buffer:
                event = self._buffer.popleft()
                self.delivered = event.sequence
                return event
            if self._ended_because is not None:
                raise StreamEndedError(self._ended_because, self.delivered)
            if self.live:
                await self._wait()
            else:
                await self._read_page()

    async def next_within(self, seconds: float) -> StreamEvent | None:
        """The next event, or None if none came within ``seconds`` (time for a heartbeat)."""
        try:
            async with asyncio.timeout(seconds):
                return await self.__anext__()
        except TimeoutError:
            return None

    async def _read_page(self) -> None:
        page = await self._log.read(self.ledger, self.scanned, self._capacity)
        if self._ended_because is not None:
            return
        for event in page:
            if event.sequence <= self.scanned:
                continue
            self.scanned = event.sequence
            if self.filter.matches(event):
                self._buffer.append(event)
        # Between two awaits: nothing can be dispatched between this check and joining.
        if self._feed.position <= self.scanned:
            self.live = True
            self._feed.join(self)

    async def _wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def offer(self, event: StreamEvent) -> None:
        """The feed's live delivery of ``event`` (the next after ``scanned``, or one seen)."""
        if event.sequence <= self.scanned:
            return  # read from the log already
        if not self.filter.matches(event):
            self.scanned = event.sequence
            return
        if len(self._buffer) >= self._capacity:
            # A whole buffer behind: stop offering; the log has this event and what follows.
            self.live = False
            self.lagged += 1
            self._feed.leave_live(self)
            self._wake()
            return
        self.scanned = event.sequence
        self._buffer.append(event)
        self._wake()

    def end(self, reason: str) -> None:
        """End the subscription: the reader gets what is buffered, then StreamEndedError."""
        if self._ended_because is None:
            self._ended_because = reason
            self._wake()

    @property
    def ended(self) -> bool:
        return self._ended_because is not None

    async def aclose(self) -> None:
        """Stop receiving; the feed forgets it (and stops, if it was the last)."""
        self.end("the subscription was closed")
        self._feed.remove(self)
