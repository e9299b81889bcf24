"""The hub: one feed per watched ledger, fanning its new events out to the live subscriptions.

A **feed** exists while a ledger has subscribers. It remembers how far it has dispatched
(``position``) and, when woken, reads the log after it and offers each event to every live
subscription that may want it (indexed by account, so that 100,000 subscribers on distinct
accounts cost a dictionary lookup per event, not a loop over all of them). Offering never
waits: a subscription that cannot take an event leaves the live set and catches up from the
log (``subscription.py``), so one slow reader never holds up the feed or the others.

**Waking.** The composition root calls ``wake(ledger)`` when it hears that a ledger's events
were committed (PostgreSQL's NOTIFY names the ledger; on SQLite, the commit in this process
does), and as a safety net for a lost notification the hub asks the log for every watched
ledger's last sequence each ``poll_interval_s``, in one question, and wakes the feeds that are
behind: watching F ledgers costs a query a second, not F.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from ledgerd.kernel.errors import validation_error
from ledgerd.platform.throttled_log import ThrottledLog
from ledgerd.streaming.application.ports import EventLog
from ledgerd.streaming.application.subscription import Subscription
from ledgerd.streaming.domain.errors import PositionAheadError, StreamEndedError
from ledgerd.streaming.domain.events import StreamEvent, StreamFilter

log = logging.getLogger(__name__)

DEFAULT_BUFFER_EVENTS = 256
DEFAULT_POLL_INTERVAL_S = 1.0
_RETRY_MIN_S = 0.2
_RETRY_MAX_S = 5.0
SHUTTING_DOWN = "the server is shutting down"


class UnknownLedgerError(LookupError):
    """A subscription to a ledger that has no event log: it does not exist."""

    def __init__(self, ledger: str) -> None:
        super().__init__(ledger)
        self.ledger = ledger


class StreamHub:
    """Every subscription of this process, by ledger."""

    def __init__(
        self,
        log: EventLog,
        *,
        catch_up_log: EventLog | None = None,
        buffer_events: int = DEFAULT_BUFFER_EVENTS,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    ) -> None:
        """``catch_up_log``: where subscribers catching up read (``log`` if None).

        Apart from the feeds' reads (``log``): a crowd catching up (``SharedReads`` bounds how
        many read at once) never holds up the live delivery to everyone else.
        """
        self._log = log
        self._catch_up_log = log if catch_up_log is None else catch_up_log
        self._buffer_events = buffer_events
        self._poll_interval_s = poll_interval_s
        self._feeds: dict[str, LedgerFeed] = {}
        self._opening: dict[str, asyncio.Future[LedgerFeed]] = {}
        self._existence_reads: dict[str, asyncio.Future[int | None]] = {}
        self._closed = False
        self._safety_net: asyncio.Task[None] | None = None

    @property
    def subscriptions(self) -> int:
        return sum(len(feed.members) for feed in self._feeds.values())

    def feed(self, ledger: str) -> LedgerFeed | None:
        return self._feeds.get(ledger)

    async def subscribe(
        self, ledger: str, stream_filter: StreamFilter, after: int | None = None
    ) -> Subscription:
        """A subscription to ``ledger``'s matching events after sequence ``after``.

        ``after=None`` means from now (what the hub has dispatched so far); 0, from the
        ledger's first event. UnknownLedgerError for a ledger that does not exist,
        PositionAheadError for a position past its last event.
        """
        if after is not None and after < 0:
            raise validation_error("after", "a position is a sequence number, 0 or more")
        if self._closed:
            raise StreamEndedError(SHUTTING_DOWN, after or 0)
        feed = await self._open(ledger)
        start = feed.position if after is None else after
        if start > feed.position:
            last = await self._log.last_sequence(ledger)
            if last is None or start > last:
                feed.forget_if_unused()
                raise PositionAheadError(ledger, start, last or 0)
        subscription = Subscription(
            feed, self._catch_up_log, stream_filter, start, self._buffer_events
        )
        feed.members.add(subscription)
        if start == feed.position:
            subscription.live = True
            feed.join(subscription)
        return subscription

    async def _open(self, ledger: str) -> LedgerFeed:
        feed = self._feeds.get(ledger)
        if feed is not None:
            return feed
        opening = self._opening.get(ledger)
        if opening is not None:
            try:
                return await asyncio.shield(opening)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # this subscriber was cancelled
                return await self._open(ledger)  # the one opening it was: open it anew
        opening = asyncio.get_running_loop().create_future()
        self._opening[ledger] = opening
        try:
            feed = LedgerFeed(self, ledger, await self._existing_ledgers_last(ledger))
            self._feeds[ledger] = feed
            feed.start()
            if self._safety_net is None:
                self._safety_net = asyncio.create_task(self._poll(), name="stream-safety-net")
            opening.set_result(feed)
        except BaseException as error:
            opening.set_exception(error)
            opening.exception()  # retrieved: waiters, if any, re-raise it themselves
            raise
        finally:
            del self._opening[ledger]
        return feed

    async def _existing_ledgers_last(self, ledger: str) -> int:
        last = await self._log.last_sequence(ledger)
        if last is None:
            raise UnknownLedgerError(ledger)
        return last

    async def ledger_exists(self, ledger: str) -> bool:
        """Whether ``ledger`` exists: at once if it has a feed, else by reading the log.

        A feed is opened only for a ledger the log knows, and ledgers are never deleted, so
        a burst of streams opening on a watched ledger costs the database nothing.
        """
        if ledger in self._feeds:
            return True
        # Streams opening at once before the first has subscribed share one read: hundreds of
        # handshakes in a burst would otherwise queue for the pool, and time out there.
        reading = self._existence_reads.get(ledger)
        if reading is None:
            reading = asyncio.ensure_future(self._log.last_sequence(ledger))
            self._existence_reads[ledger] = reading
            reading.add_done_callback(lambda _: self._forget_existence_read(ledger, reading))
        # Shielded: one caller cancelled (its client left) does not cancel the others' read.
        return await asyncio.shield(reading) is not None

    def _forget_existence_read(self, ledger: str, reading: asyncio.Future[int | None]) -> None:
        if self._existence_reads.get(ledger) is reading:
            del self._existence_reads[ledger]

    def wake(self, ledger: str) -> None:
        """``ledger`` committed events: its feed, if any, reads them now."""
        feed = self._feeds.get(ledger)
        if feed is not None:
            feed.dirty.set()

    def wake_all(self) -> None:
        """Something committed somewhere (or nobody was listening for a while): read all."""
        for feed in self._feeds.values():
            feed.dirty.set()

    async def _poll(self) -> None:
        """Each interval, wake the watched ledgers' feeds whose log went further than they did.

        One question for every watched ledger (the log answers it in batches), where a poll
        per feed would be one read per ledger and interval. A failed poll is a warning (one a
        minute while it lasts); the next interval asks again (and a feed whose own read fails
        retries by itself).
        """
        failures = ThrottledLog(log, interval_s=60.0)  # an outage is one line a minute
        while True:
            await asyncio.sleep(self._poll_interval_s)
            if not self._feeds:
                continue
            try:
                lasts = await self._log.last_sequences(list(self._feeds))
            except Exception as error:  # noqa: BLE001 - the database may come back: keep asking
                failures.log(
                    logging.WARNING,
                    type(error).__name__,
                    "stream safety net cannot read the watched ledgers' last events (%s)",
                    error,
                )
                continue
            for ledger, last in lasts.items():
                feed = self._feeds.get(ledger)
                if feed is not None and last > feed.position:
                    feed.dirty.set()

    def _drop(self, feed: LedgerFeed) -> None:
        if self._feeds.get(feed.ledger) is feed:
            del self._feeds[feed.ledger]

    async def aclose(self, reason: str = SHUTTING_DOWN) -> None:
        """End every subscription (each reader gets what it holds, then the reason) and stop."""
        self._closed = True
        feeds = list(self._feeds.values())
        for feed in feeds:
            for subscription in list(feed.members):
                subscription.end(reason)
        await asyncio.gather(*(feed.stop() for feed in feeds))
        if self._safety_net is not None:
            self._safety_net.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._safety_net
            self._safety_net = None

    @property
    def log(self) -> EventLog:
        return self._log

    @property
    def page_size(self) -> int:
        """How many events a feed reads at once: enough for a busy ledger's batch."""
        return max(self._buffer_events, 100)


class LedgerFeed:
    """One ledger's live fan-out: what has been dispatched, to whom."""

    def __init__(self, hub: StreamHub, ledger: str, position: int) -> None:
        self._hub = hub
        self.ledger = ledger
        self.position = position
        self.members: set[Subscription] = set()
        # The live subscriptions: those without an account filter, and the others by account.
        self._everyone: set[Subscription] = set()
        self._by_account: dict[str, set[Subscription]] = {}
        self.dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"stream-feed-{self.ledger}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def join(self, subscription: Subscription) -> None:
        accounts = subscription.filter.accounts
        if not accounts:
            self._everyone.add(subscription)
            return
        for account in accounts:
            self._by_account.setdefault(account, set()).add(subscription)

    def leave_live(self, subscription: Subscription) -> None:
        accounts = subscription.filter.accounts
        if not accounts:
            self._everyone.discard(subscription)
            return
        for account in accounts:
            watchers = self._by_account.get(account)
            if watchers is not None:
                watchers.discard(subscription)
                if not watchers:
                    del self._by_account[account]

    def remove(self, subscription: Subscription) -> None:
        self.leave_live(subscription)
        self.members.discard(subscription)
        self.forget_if_unused()

    def forget_if_unused(self) -> None:
        if not self.members:
            self._hub._drop(self)  # noqa: SLF001 - a feed and its hub are one unit
            if self._task is not None:
                self._task.cancel()
                self._task = None

    def dispatch(self, events: Iterable[StreamEvent]) -> None:
        """Offer each event, in order, to the live subscriptions it may concern. Never waits."""
        for event in events:
            if event.sequence <= self.position:
                continue
            self.position = event.sequence
            for subscription in self._candidates(event):
                subscription.offer(event)

    def _candidates(self, event: StreamEvent) -> list[Subscription]:
        # A copy: an offer may move its subscription out of the live set.
        candidates = list(self._everyone)
        if self._by_account and event.accounts:
            if len(event.accounts) == 1:
                (account,) = event.accounts
                candidates.extend(self._by_account.get(account, ()))
            else:
                seen: set[Subscription] = set()
                for account in event.accounts:
                    seen.update(self._by_account.get(account, ()))
                candidates.extend(seen)
        return candidates

    async def _run(self) -> None:
        retry_s = _RETRY_MIN_S
        while True:
            await self.dirty.wait()  # a commit's notification, or the hub's safety net
            self.dirty.clear()
            try:
                await self._catch_up()
            except Exception as error:  # noqa: BLE001 - the database may come back: keep trying
                log.warning(
                    "stream feed of ledger %s cannot read its events (%s); retrying in %.1f s",
                    self.ledger,
                    error,
                    retry_s,
                )
                await asyncio.sleep(retry_s)
                retry_s = min(retry_s * 2, _RETRY_MAX_S)
                self.dirty.set()
                continue
            retry_s = _RETRY_MIN_S

    async def _catch_up(self) -> None:
        page_size = self._hub.page_size
        while True:
            page = await self._hub.log.read(self.ledger, self.position, page_size)
            self.dispatch(page)
            if len(page) < page_size:
                return
