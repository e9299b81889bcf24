r"""Live streams (issue 17, part a): 100,000 subscribers in one process, in the streaming core.

Each subscriber is an asyncio task iterating a ``Subscription`` of its own from the real
``StreamHub``: the in-memory transport, what a gRPC, SSE or WebSocket stream does minus the
socket and the encoding. What is measured is therefore the hub's fan-out, account index and
backpressure. Three experiments:

* **fan-out**: N subscribers (1, 1k, 10k, 100k), all unfiltered, or each filtered on an
  account of its own (every event is a transfer between two accounts: it reaches two
  subscribers through the index). The time to subscribe them all and to start their readers,
  memory per subscriber (RSS growth / N), and, one event at a time, the latency from commit
  (the event is in the log and the hub is woken) to the first and to the last subscriber
  receiving it. On two logs: the unit tests' fake, in memory (the hub alone), and the SQL
  log (``outbox_events`` on PostgreSQL, each event a transfer committed by the posting use
  case: the product's path, a read of the log per wake-up included).
* **throughput**: many concurrent callers post single transfers through the batcher, first
  alone, then with one unfiltered subscriber, the hub woken the way ``ledgerd serve`` wakes it
  (this process's commits and PostgreSQL's NOTIFY): the posting rate, the events/s the
  subscriber took, its lag when posting stopped and how long it took to catch up.
* **slow**: R readers, with and without M subscribers that never read, while four buffers'
  worth of events are committed: RSS as the events flow, and whether every reader still got
  every event in time.

Every case runs in a fresh interpreter (``--quick``: all in this one), so that one case's
freed heap does not absorb the next one's growth, with the garbage collector tuned as
``ledgerd serve`` tunes it (by default, or as LEDGERD_GC_FREEZE and LEDGERD_GC_GEN0_THRESHOLD
say).

    python bench/streams.py [--quick] [--only fanout,throughput,slow] [--profile] \
        [--server-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres] [--output FILE]

Creates (and afterwards drops) the database ``ledgerd_bench_streams`` on that server. Writes
bench/results/streams.json (or ``--output``) and prints a table; ``--profile`` also runs the
100k unfiltered fan-out on the fake log once more under cProfile, into
bench/results/streams-profile.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dishka import AsyncContainer
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.money import Asset
from ledgerd.kernel.result import Ok
from ledgerd.ledger.application.create_ledger import CreateLedger, CreateLedgerHandler
from ledgerd.ledger.application.open_account import OpenAccount, OpenAccountHandler
from ledgerd.ledger.application.post_transfers import (
    PostTransfers,
    PostTransfersHandler,
    TransferPoster,
)
from ledgerd.ledger.domain.model import AccountFlags
from ledgerd.ledger.domain.requests import LegRequest, TransferRequest
from ledgerd.loadgen.pgbench import ServerAddress, drop_database, recreate_database
from ledgerd.main.container import build_container
from ledgerd.main.contexts.streaming import catch_up_reads, waking_the_hub
from ledgerd.main.migrations import MIGRATIONS
from ledgerd.main.settings import Settings
from ledgerd.platform.gc_tuning import GcPauses, tune_after_start
from ledgerd.platform.outbox.store import STREAMS_PER_QUERY, OutboxStore
from ledgerd.streaming.adapters.outbox_log import OutboxEventLog
from ledgerd.streaming.application.hub import StreamHub
from ledgerd.streaming.application.ports import EventLog
from ledgerd.streaming.application.shared_reads import SharedReads
from ledgerd.streaming.application.subscription import Subscription
from ledgerd.streaming.domain.errors import StreamEndedError
from ledgerd.streaming.domain.events import StreamEvent, StreamFilter

# The fake log lives with the unit tests, which are not installed: run from anywhere, this
# script finds them beside itself.
SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakes.event_log import FakeEventLog  # noqa: E402 - needs the path above

RESULTS = SCRIPT.parent / "results"
PROFILE = RESULTS / "streams-profile.txt"
DEFAULT_SERVER_URL = os.environ.get(
    "LEDGERD_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
DATABASE = "ledgerd_bench_streams"
LEDGER = "streams"
USD = Asset("USD", 2)
# The accounts the transfers move money between; subscribers filter on accounts 0 .. N-1,
# so with N of 1,000 or more both accounts of every transfer have a subscriber each.
ACCOUNTS = 1_000
# Two more, for the transfers that open a ledger's feed before a case is measured.
WARM_UP_ACCOUNTS = ("warm-up-debit", "warm-up-credit")
EVERYTHING = StreamFilter()
# Long enough that a feed only reads its log when a commit wakes it: every delivery timed is
# one the commit caused, not the safety-net poll's.
NO_POLL_S = 3600.0
DELIVERY_TIMEOUT_S = 120.0
HEARTBEAT_S = float(Settings.model_fields["stream_heartbeat_seconds"].default)
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def account(number: int) -> str:
    return f"acct-{number:06d}"


def _rss_bytes() -> int:
    """Resident memory now (not the peak: the slow-subscriber case watches it over time)."""
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * PAGE_BYTES


def _settled_rss_bytes() -> int:
    gc.collect()
    return _rss_bytes()


def _tune_gc_as_serve_does() -> None:
    """``serve``'s settings, from the environment as it reads them (LEDGERD_GC_...)."""
    settings = Settings()
    tune_after_start(freeze=settings.gc_freeze, gen0_threshold=settings.gc_gen0_threshold)


def _percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least ``fraction`` of them at or below it."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


# --- the in-memory transport -----------------------------------------------------------------


class Arrivals:
    """Where every reader reports each event it receives: when the first and the last got it.

    The benchmark commits one event (or one batch) at a time and waits until every reader it
    concerns has received it, so one count of who is still missing it is enough. An event
    from before the round (one the count would wrongly take for this round's) is a stray:
    the case fails rather than report a latency measured on the wrong event.
    """

    def __init__(self) -> None:
        self.expected = 0
        self.missing = 0
        self.first = 0.0
        self.last = 0.0
        self.received = 0
        self.strays = 0
        self._newest = 0  # the newest sequence received
        self._before_round = 0  # the newest when this round began
        self.done = asyncio.Event()

    def expect(self, deliveries: int) -> None:
        self.expected = self.missing = deliveries
        self._before_round = self._newest
        self.done.clear()

    def arrived(self, sequence: int) -> None:
        if sequence <= self._before_round or self.missing <= 0:
            self.strays += 1
            return
        self._newest = max(self._newest, sequence)
        self.received += 1
        self.missing -= 1
        if self.missing == self.expected - 1:
            self.first = time.perf_counter()
        if self.missing == 0:
            self.last = time.perf_counter()
            self.done.set()

    async def all_in(self) -> None:
        async with asyncio.timeout(DELIVERY_TIMEOUT_S):
            await self.done.wait()

    def check(self) -> None:
        if self.strays:
            msg = f"{self.strays} deliveries of events from before their round"
            raise RuntimeError(msg)


async def read(subscription: Subscription, arrivals: Arrivals) -> None:
    """One subscriber's transport: take each event as soon as it comes, until the stream ends."""
    with contextlib.suppress(StreamEndedError):
        async for event in subscription:
            arrivals.arrived(event.sequence)


async def read_within(subscription: Subscription, arrivals: Arrivals) -> None:
    """The same, waiting for each event at most a heartbeat's time, as the real streams do.

    The gRPC stream of a caller whose credentials expire, and the streams that send
    heartbeats, take each event with ``next_within``; None is when they would send the
    heartbeat (or end the stream).
    """
    with contextlib.suppress(StreamEndedError):
        while True:
            event = await subscription.next_within(HEARTBEAT_S)
            if event is not None:
                arrivals.arrived(event.sequence)


READERS = {"iterate": read, "within": read_within}


# --- the two logs ----------------------------------------------------------------------------


class Commits(Protocol):
    """Somewhere to commit transfers whose events a hub fans out."""

    @property
    def hub(self) -> StreamHub: ...

    async def commit(self, pairs: Sequence[tuple[str, str]]) -> None:
        """One transfer per (debit, credit) pair, in one commit; then wake the hub."""
        ...


class FakeLogCommits:
    """The unit tests' in-memory log: no I/O, so only the hub's own work is measured."""

    def __init__(self) -> None:
        self.log = FakeEventLog(LEDGER)
        self.hub = StreamHub(self.log, poll_interval_s=NO_POLL_S)

    async def commit(self, pairs: Sequence[tuple[str, str]]) -> None:
        for debit, credit in pairs:
            self.log.append(LEDGER, accounts=(debit, credit))
        self.hub.wake(LEDGER)


class SqlLogCommits:
    """Transfers posted by the real use case on PostgreSQL; the hub reads ``outbox_events``."""

    def __init__(
        self, hub: StreamHub, post: PostTransfersHandler, run: str, container: AsyncContainer
    ) -> None:
        self.hub = hub
        self.container = container
        self._post = post
        self._run = run
        self._posted = 0

    async def commit(self, pairs: Sequence[tuple[str, str]]) -> None:
        requests = []
        for debit, credit in pairs:
            self._posted += 1
            leg = LegRequest(debit, credit, 1)
            requests.append(TransferRequest(f"{self._run}-{self._posted}", (leg,)))
        outcome = await self._post(PostTransfers(LEDGER, requests))
        failed = [result for result in outcome if not isinstance(result, Ok)]
        if failed:
            msg = f"posting failed: {failed[0]}"
            raise RuntimeError(msg)
        self.hub.wake(LEDGER)


@contextlib.asynccontextmanager
async def fake_log() -> AsyncIterator[FakeLogCommits]:
    commits = FakeLogCommits()
    try:
        yield commits
    finally:
        await commits.hub.aclose()


@contextlib.asynccontextmanager
async def sql_log(database_url: str) -> AsyncIterator[SqlLogCommits]:
    settings = Settings(
        database_url=database_url, auth="off", stream_poll_interval_seconds=NO_POLL_S
    )
    container = build_container(settings)
    try:
        commits = SqlLogCommits(
            await container.get(StreamHub),
            await container.get(PostTransfersHandler),
            run=f"fanout-{time.time_ns()}",
            container=container,
        )
        yield commits
    finally:
        await container.close()


async def prepare_database(database_url: str) -> None:
    """Migrate the fresh database; one ledger with the accounts every case posts between."""
    container = build_container(Settings(database_url=database_url, auth="off"))
    try:
        await MIGRATIONS.upgrade(await container.get(AsyncEngine))
        await (await container.get(CreateLedgerHandler))(CreateLedger(LEDGER, LEDGER))
        open_account = await container.get(OpenAccountHandler)
        for name in [*WARM_UP_ACCOUNTS, *(account(number) for number in range(ACCOUNTS))]:
            await open_account(OpenAccount(LEDGER, name, USD, AccountFlags()))
    finally:
        await container.close()


# --- fan-out ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FanOut:
    log: str  # "fake" or "sql"
    subscribers: int
    filtered: bool
    events: int
    reader: str = "iterate"  # or "within": see READERS
    warm_up: int = 3


async def open_the_feed(commits: Commits) -> None:
    """Open the ledger's feed, and warm the posting path, before anything is measured.

    A feed is the ledger's, not a subscriber's: a subscription to accounts the measured
    transfers never touch keeps it open at no cost per event, so the first subscriber
    measured pays for itself only. A few transfers between those accounts warm the database
    connections and statement caches; the sentinel receiving them proves the feed has
    dispatched them, so that no subscriber measured starts before them.
    """
    debit, credit = WARM_UP_ACCOUNTS
    sentinel = await commits.hub.subscribe(LEDGER, StreamFilter(accounts=frozenset({debit})))
    for _ in range(3):
        await commits.commit([(debit, credit)])
        async with asyncio.timeout(DELIVERY_TIMEOUT_S):
            await anext(sentinel)


async def subscribe_all(hub: StreamHub, count: int, *, filtered: bool) -> list[Subscription]:
    return [
        await hub.subscribe(
            LEDGER, StreamFilter(accounts=frozenset({account(n)})) if filtered else EVERYTHING
        )
        for n in range(count)
    ]


async def start_readers(
    subscriptions: Sequence[Subscription], arrivals: Arrivals, reader: str = "iterate"
) -> list[asyncio.Task[None]]:
    transport = READERS[reader]
    readers = [
        asyncio.create_task(transport(subscription, arrivals)) for subscription in subscriptions
    ]
    # One turn of the loop runs every new task's first step, in which it parks on its empty
    # buffer; this task is scheduled after all of them.
    await asyncio.sleep(0)
    return readers


async def stop_readers(hub: StreamHub, readers: Sequence[asyncio.Task[None]]) -> None:
    await hub.aclose()
    await asyncio.gather(*readers)


async def measure_fan_out(commits: Commits, case: FanOut, profile: Path | None) -> dict[str, Any]:
    hub = commits.hub
    arrivals = Arrivals()
    await open_the_feed(commits)
    _tune_gc_as_serve_does()
    rss_before = _settled_rss_bytes()

    began = time.perf_counter()
    subscriptions = await subscribe_all(hub, case.subscribers, filtered=case.filtered)
    subscribe_s = time.perf_counter() - began
    rss_subscribed = _settled_rss_bytes()
    began = time.perf_counter()
    readers = await start_readers(subscriptions, arrivals, case.reader)
    start_readers_s = time.perf_counter() - began
    rss_reading = _settled_rss_bytes()

    choose = random.Random(17)  # noqa: S311 - a reproducible workload, not a secret
    # A transfer touches a subscribed account and another one (with 1,000 subscribers or more,
    # both are subscribed): a filtered event reaches one or two subscribers.
    subscribed_accounts = min(case.subscribers, ACCOUNTS)
    first: list[float] = []
    last: list[float] = []
    pauses = GcPauses()
    profiler = cProfile.Profile() if profile is not None else None
    deliveries = 0
    cpu_s = 0.0
    pauses.start()
    if profiler is not None:
        profiler.enable()
    for number in range(case.warm_up + case.events):
        debit = choose.randrange(subscribed_accounts)
        credit = (debit + 1 + choose.randrange(ACCOUNTS - 1)) % ACCOUNTS
        if case.filtered:
            arrivals.expect(1 + (credit < case.subscribers))
        else:
            arrivals.expect(case.subscribers)
        cpu = time.process_time()
        await commits.commit([(account(debit), account(credit))])
        woken = time.perf_counter()
        await arrivals.all_in()
        if number >= case.warm_up:
            first.append(arrivals.first - woken)
            last.append(arrivals.last - woken)
            # This process's CPU (commit included): less disturbed by a busy machine than time.
            cpu_s += time.process_time() - cpu
            deliveries += arrivals.expected
    if profiler is not None and profile is not None:
        profiler.disable()
        _write_profile(profiler, profile, case)
    pauses.stop()
    await stop_readers(hub, readers)
    arrivals.check()
    return {
        "experiment": "fanout",
        "log": case.log,
        "subscribers": case.subscribers,
        "filtered": case.filtered,
        "reader": case.reader,
        "events": case.events,
        "cpu_us_per_delivery": round(cpu_s * 1e6 / deliveries, 2),
        "subscribe_s": round(subscribe_s, 3),
        "start_readers_s": round(start_readers_s, 3),
        "subscribe_us_per_subscriber": round(
            (subscribe_s + start_readers_s) * 1e6 / case.subscribers, 1
        ),
        "rss_before_mib": round(rss_before / 2**20, 1),
        "bytes_per_subscription": round((rss_subscribed - rss_before) / case.subscribers),
        "bytes_per_subscriber": round((rss_reading - rss_before) / case.subscribers),
        "first_p50_ms": _ms(_percentile(first, 0.5)),
        "last_p50_ms": _ms(_percentile(last, 0.5)),
        "last_p99_ms": _ms(_percentile(last, 0.99)),
        "last_max_ms": _ms(max(last)),
        "gc": pauses.summary(),
    }


def _write_profile(profiler: cProfile.Profile, path: Path, case: FanOut) -> None:
    out = io.StringIO()
    statistics = pstats.Stats(profiler, stream=out)
    statistics.sort_stats(pstats.SortKey.TIME).print_stats(25)
    statistics.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(15)
    heading = (
        f"cProfile of {case.events + case.warm_up} events fanned out to {case.subscribers} "
        f"{'filtered' if case.filtered else 'unfiltered'} subscribers ({case.log} log)\n"
    )
    path.write_text(heading + out.getvalue())


# --- throughput ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Throughput:
    seconds: float
    callers: int
    warm_up_s: float = 1.0


@dataclass(slots=True)
class Tally:
    """What the throughput case's one subscriber has taken: how many events, up to which."""

    events: int = 0
    last: int = 0
    _target: int | None = None
    _reached: asyncio.Event = field(default_factory=asyncio.Event)

    def took(self, sequence: int) -> None:
        self.events += 1
        self.last = sequence
        if self._target is not None and sequence >= self._target:
            self._reached.set()

    async def until(self, sequence: int) -> None:
        """Return once the subscriber has taken the event at ``sequence``."""
        self._target = sequence
        if self.last < sequence:
            async with asyncio.timeout(DELIVERY_TIMEOUT_S):
                await self._reached.wait()


async def take_all(subscription: Subscription, tally: Tally) -> None:
    with contextlib.suppress(StreamEndedError):
        async for event in subscription:
            tally.took(event.sequence)


async def post_for(
    poster: TransferPoster, seconds: float, callers: int, run: str
) -> tuple[int, float]:
    """``callers`` concurrent callers post one transfer at a time for ``seconds``: how many."""
    deadline = time.perf_counter() + seconds
    posted = 0

    async def caller(number: int) -> None:
        nonlocal posted
        choose = random.Random(number)  # noqa: S311 - a reproducible workload, not a secret
        sent = 0
        while time.perf_counter() < deadline:
            debit = choose.randrange(ACCOUNTS)
            credit = (debit + 1 + choose.randrange(ACCOUNTS - 1)) % ACCOUNTS
            sent += 1
            leg = LegRequest(account(debit), account(credit), 1)
            request = TransferRequest(f"{run}-{number}-{sent}", (leg,))
            (result,) = await poster(PostTransfers(LEDGER, [request]))
            if not isinstance(result, Ok):
                msg = f"posting failed: {result}"
                raise RuntimeError(msg)  # noqa: TRY004 - a refused transfer, not a type error
            posted += 1

    began = time.perf_counter()
    await asyncio.gather(*(caller(number) for number in range(callers)))
    return posted, time.perf_counter() - began


async def measure_throughput(database_url: str, case: Throughput) -> dict[str, Any]:
    # The product's settings: the batcher, the default buffer and poll, and the wake-ups of
    # ``ledgerd serve`` (this process's commits at once, others' through NOTIFY).
    settings = Settings(database_url=database_url, auth="off")
    container = build_container(settings)
    try:
        poster = await container.get(TransferPoster)
        hub = await container.get(StreamHub)
        async with waking_the_hub(container, settings, "serve"):
            _tune_gc_as_serve_does()
            run = f"throughput-{time.time_ns()}"
            await post_for(poster, case.warm_up_s, case.callers, f"{run}-warm")
            alone, alone_s = await post_for(poster, case.seconds, case.callers, f"{run}-alone")

            subscription = await hub.subscribe(LEDGER, EVERYTHING)
            tally = Tally()
            reader = asyncio.create_task(take_all(subscription, tally))
            watched, watched_s = await post_for(
                poster, case.seconds, case.callers, f"{run}-watched"
            )
            # At the stop (every caller has its answer: nothing more will be committed), before
            # the subscriber can run again.
            stopped = time.perf_counter()
            taken, taken_last = tally.events, tally.last
            last = await hub.log.last_sequence(LEDGER) or 0
            lag = last - taken_last
            await tally.until(last)
            catch_up_s = time.perf_counter() - stopped
            lagged = subscription.lagged
            await subscription.aclose()
            await reader
            replayed, replay_s = await replay(hub, last)
    finally:
        await container.close()
    return {
        "experiment": "throughput",
        "callers": case.callers,
        "seconds": case.seconds,
        "posted_alone_per_s": round(alone / alone_s),
        "posted_watched_per_s": round(watched / watched_s),
        "consumed_per_s": round(taken / watched_s),
        "lag_events_at_stop": lag,
        "catch_up_ms": _ms(catch_up_s),
        "moved_to_log": lagged,
        "replayed_events": replayed,
        "replayed_per_s": round(replayed / replay_s),
    }


async def replay(hub: StreamHub, last: int) -> tuple[int, float]:
    """One subscriber's own ceiling on this log: the ledger read back from its first event.

    Nothing posts meanwhile, so this is the subscription catching up, a page at a time.
    """
    subscription = await hub.subscribe(LEDGER, EVERYTHING, after=0)
    began = time.perf_counter()
    events = 0
    async with asyncio.timeout(DELIVERY_TIMEOUT_S):
        while subscription.delivered < last:
            await anext(subscription)
            events += 1
    elapsed = time.perf_counter() - began
    await subscription.aclose()
    return events, elapsed


# --- slow subscribers ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Slow:
    log: str
    readers: int
    non_readers: int
    buffers: int = 4
    batch: int = 64


async def measure_slow(commits: Commits, case: Slow) -> dict[str, Any]:
    hub = commits.hub
    buffer_events = int(Settings.model_fields["stream_buffer_events"].default)
    await open_the_feed(commits)
    _tune_gc_as_serve_does()
    rss_before = _settled_rss_bytes()
    reading = await subscribe_all(hub, case.readers, filtered=False)
    idle = await subscribe_all(hub, case.non_readers, filtered=False)
    arrivals = Arrivals()
    readers = await start_readers(reading, arrivals)
    rss_subscribed = _settled_rss_bytes()

    choose = random.Random(23)  # noqa: S311 - a reproducible workload, not a secret
    events = case.buffers * buffer_events
    committed = 0
    rss_by_events: dict[int, float] = {0: round((rss_subscribed - rss_before) / 2**20, 1)}
    began = time.perf_counter()
    while committed < events:
        size = min(case.batch, events - committed)
        pairs = []
        for _ in range(size):
            debit = choose.randrange(ACCOUNTS)
            credit = (debit + 1 + choose.randrange(ACCOUNTS - 1)) % ACCOUNTS
            pairs.append((account(debit), account(credit)))
        arrivals.expect(case.readers * size)
        await commits.commit(pairs)
        await arrivals.all_in()
        committed += size
        if committed % buffer_events == 0:
            rss_by_events[committed] = round((_settled_rss_bytes() - rss_before) / 2**20, 1)
    delivered_s = time.perf_counter() - began

    last = max(subscription.delivered for subscription in reading)
    every_reader_has_all = all(subscription.delivered == last for subscription in reading)
    readers_moved_to_log = sum(subscription.lagged for subscription in reading)
    idle_held = max((subscription.buffered for subscription in idle), default=0)
    idle_still_live = sum(subscription.live for subscription in idle)
    await stop_readers(hub, readers)
    arrivals.check()
    return {
        "experiment": "slow",
        "log": case.log,
        "readers": case.readers,
        "non_readers": case.non_readers,
        "buffer_events": buffer_events,
        "events": events,
        "rss_growth_mib_by_events": rss_by_events,
        "delivered_to_readers_s": round(delivered_s, 3),
        "every_reader_got_every_event": every_reader_has_all,
        "readers_moved_to_log": readers_moved_to_log,
        "most_events_held_by_a_non_reader": idle_held,
        "non_readers_still_live": idle_still_live,
    }


# --- catching up together ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CatchUp:
    subscribers: int
    behind: int  # how many events the subscribers resume behind the ledger's last, at most
    shared: bool  # reads as `serve` reads (SharedReads, half the pool), or each its own at once
    spread: bool = False  # each from a position of its own, spread over `behind`; else one


class CountingLog:
    """The SQL log, counting the pages read from the database and every query the hub sends."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self.reads = 0
        self.queries = 0

    async def last_sequence(self, ledger: str) -> int | None:
        self.queries += 1
        return await self._log.last_sequence(ledger)

    async def read(self, ledger: str, after: int, limit: int) -> Sequence[StreamEvent]:
        self.reads += 1
        self.queries += 1
        return await self._log.read(ledger, after, limit)

    async def last_sequences(self, ledgers: Collection[str]) -> Mapping[str, int]:
        self.queries += -(-len(ledgers) // STREAMS_PER_QUERY)  # as the store asks them
        return await self._log.last_sequences(ledgers)


async def _catch_up(subscription: Subscription, last: int, failed: list[str]) -> None:
    try:
        while subscription.delivered < last:
            await anext(subscription)
    except LedgerdError as error:  # what its stream would end with, to the client
        failed.append(error.code)


class Meanwhile:
    """A writer posting one transfer at a time until ``done``: each one's time, or failure."""

    def __init__(self, commits: SqlLogCommits) -> None:
        self._commits = commits
        self.done = asyncio.Event()
        self.seconds: list[float] = []
        self.failed: list[str] = []

    async def post_until_done(self) -> None:
        while not self.done.is_set():
            posted = time.perf_counter()
            try:
                await self._commits.commit([(account(3), account(4))])
            except (LedgerdError, RuntimeError) as error:
                self.failed.append(str(error).split(":", 1)[0])
            else:
                self.seconds.append(time.perf_counter() - posted)


async def measure_catch_up(database_url: str, case: CatchUp) -> dict[str, Any]:
    """N subscribers resume at once from one position, ``behind`` events back (a restart).

    On PostgreSQL: the events are committed first by the posting use case; then N
    subscriptions from the same position, their readers started together, until every one has
    every event. With ``shared`` the hub reads through ``SharedReads`` as ``serve``'s does;
    without, every subscriber reads its own pages (the same run's baseline).
    """
    async with sql_log(database_url) as commits:
        for _ in range(0, case.behind, 100):
            await commits.commit([(account(1), account(2))] * 100)
        counting = CountingLog(OutboxEventLog(await commits.container.get(OutboxStore)))
        last = await counting.last_sequence(LEDGER)
        if last is None:
            msg = f"ledger {LEDGER} is not there: prepare_database did not run"
            raise RuntimeError(msg)
        settings = await commits.container.get(Settings)
        catch_up_log = (
            SharedReads(counting, most_at_once=catch_up_reads(settings)) if case.shared else None
        )
        hub = StreamHub(counting, catch_up_log=catch_up_log, poll_interval_s=NO_POLL_S)
        first = last - case.behind
        subscriptions = [
            await hub.subscribe(
                LEDGER,
                EVERYTHING,
                after=first + number * case.behind // case.subscribers if case.spread else first,
            )
            for number in range(case.subscribers)
        ]

        starts = [(each, each.delivered) for each in subscriptions]
        failed: list[str] = []
        writer = Meanwhile(commits)  # what the crowd leaves the ledger's writers
        began = time.perf_counter()
        posting = asyncio.create_task(writer.post_until_done())
        async with asyncio.timeout(DELIVERY_TIMEOUT_S):
            await asyncio.gather(*(_catch_up(each, last, failed) for each in subscriptions))
        elapsed = time.perf_counter() - began
        writer.done.set()
        await posting
        for subscription in subscriptions:
            await subscription.aclose()
        await hub.aclose()
    return {
        "experiment": "catchup",
        "subscribers": case.subscribers,
        "behind": case.behind,
        "shared": case.shared,
        "spread": case.spread,
        "caught_up_s": round(elapsed, 3),
        "log_reads": counting.reads,
        "events_delivered": sum(each.delivered - each_start for each, each_start in starts),
        # Subscriptions whose read of the log failed (their streams would have ended so).
        "failed": len(failed),
        "failed_with": sorted(set(failed)),
        "posts": len(writer.seconds),
        "post_p50_ms": _ms(_percentile(writer.seconds, 0.5)) if writer.seconds else None,
        "post_max_ms": _ms(max(writer.seconds)) if writer.seconds else None,
        "posts_failed": len(writer.failed),
    }


# --- idle: many ledgers watched, nothing committed ----------------------------------------


@dataclass(frozen=True, slots=True)
class Idle:
    ledgers: int  # each watched by one subscriber
    seconds: float = 5.0


async def measure_idle(database_url: str, case: Idle) -> dict[str, Any]:
    """What watching costs the database while nothing happens: the safety net's queries.

    ``ledgers`` ledgers (created once, kept for the next case), one subscriber each on a hub
    with the default poll interval; nothing is committed for ``seconds``. Counted: the queries
    the hub sends the log (pages read, and the safety net's own).
    """
    async with sql_log(database_url) as commits:
        container = commits.container
        counting = CountingLog(OutboxEventLog(await container.get(OutboxStore)))
        create = await container.get(CreateLedgerHandler)
        names = [f"idle-{number:05d}" for number in range(case.ledgers)]
        for name in names:
            if await counting.last_sequence(name) is None:
                await create(CreateLedger(name, name))
        hub = StreamHub(counting)
        subscriptions = [await hub.subscribe(name, EVERYTHING) for name in names]
        await asyncio.sleep(1.5)  # every feed started and past its first read
        before = counting.queries
        await asyncio.sleep(case.seconds)
        queries = counting.queries - before
        for subscription in subscriptions:
            await subscription.aclose()
        await hub.aclose()
    return {
        "experiment": "idle",
        "ledgers": case.ledgers,
        "seconds": case.seconds,
        "queries": queries,
        "queries_per_s": round(queries / case.seconds, 1),
    }


# --- one case per interpreter ----------------------------------------------------------------


def _opened_log(name: str, database_url: str) -> contextlib.AbstractAsyncContextManager[Commits]:
    return fake_log() if name == "fake" else sql_log(database_url)


async def run_case(case: dict[str, Any], database_url: str, profile: Path | None) -> dict[str, Any]:
    experiment = case.pop("experiment")
    if experiment == "throughput":
        return await measure_throughput(database_url, Throughput(**case))
    if experiment == "catchup":
        return await measure_catch_up(database_url, CatchUp(**case))
    if experiment == "idle":
        return await measure_idle(database_url, Idle(**case))
    async with _opened_log(case["log"], database_url) as commits:
        if experiment == "fanout":
            return await measure_fan_out(commits, FanOut(**case), profile)
        return await measure_slow(commits, Slow(**case))


# --- the whole run ---------------------------------------------------------------------------

EXPERIMENTS = ("fanout", "throughput", "slow", "catchup", "idle")
BIG = 100_000  # the subscribers issue 17 asks for


def plan(*, quick: bool, only: Sequence[str]) -> list[dict[str, Any]]:
    """The cases of a run, each the keyword arguments of its experiment."""
    sizes = (1, 1_000) if quick else (1, 1_000, 10_000, 100_000)
    cases: list[dict[str, Any]] = []
    if "fanout" in only:
        # (log, filtered, reader): every subscriber iterating its subscription on both logs,
        # then the fake log's unfiltered fan-out again with each event taken by next_within.
        variants = [
            (log, filtered, "iterate") for log in ("fake", "sql") for filtered in (False, True)
        ]
        variants.append(("fake", False, "within"))
        for log, filtered, reader in variants:
            for size in sizes:
                # Fewer events where each costs a fan-out to everyone.
                events = 20 if quick else (30 if size >= BIG and not filtered else 200)
                case = {"log": log, "subscribers": size, "filtered": filtered, "events": events}
                cases.append({"experiment": "fanout", **case, "reader": reader})
    if "throughput" in only:
        cases.append(
            {"experiment": "throughput", "seconds": 2.0 if quick else 10.0, "callers": 500}
        )
    if "slow" in only:
        readers, non_readers = (100, 1_000) if quick else (1_000, 10_000)
        cases += [
            {"experiment": "slow", "log": "sql", "readers": readers, "non_readers": idle}
            for idle in (0, non_readers)
        ]
    if "catchup" in only:
        # Each size from one position and from spread ones, each with its own reads (the
        # baseline) and as `serve` reads, interleaved.
        for subscribers in (100, 1_000) if quick else (1_000, 10_000):
            cases += [
                {
                    "experiment": "catchup",
                    "subscribers": subscribers,
                    "behind": 1_000,
                    "shared": shared,
                    "spread": spread,
                }
                for spread in (False, True)
                for shared in (False, True)
            ]
    if "idle" in only:
        # One ledger watched (the baseline), then many.
        cases += [
            {"experiment": "idle", "ledgers": ledgers}
            for ledgers in ((1, 200) if quick else (1, 2_000))
        ]
    return cases


def _in_this_interpreter(
    case: dict[str, Any], database_url: str, profile: Path | None
) -> dict[str, Any]:
    return asyncio.run(run_case(dict(case), database_url, profile))


def _in_a_fresh_interpreter(
    case: dict[str, Any], database_url: str, profile: Path | None
) -> dict[str, Any]:
    command = [sys.executable, str(SCRIPT), "--case", json.dumps(case)]
    command += ["--database-url", database_url]
    if profile is not None:
        command += ["--profile-to", str(profile)]
    finished = subprocess.run(  # noqa: S603 - this script, by its own path
        command, check=True, capture_output=True, text=True, timeout=900
    )
    result: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
    return result


def _profiled(case: dict[str, Any]) -> bool:
    return (
        case["experiment"] == "fanout"
        and case["log"] == "fake"
        and not case["filtered"]
        and case["reader"] == "iterate"
        and case["subscribers"] == BIG
    )


def _table(results: Sequence[dict[str, Any]]) -> str:
    lines: list[str] = []
    fan_outs = [result for result in results if result["experiment"] == "fanout"]
    if fan_outs:
        lines += [
            (
                "| log | subscribers | filter | reader | subscribe all (s) | µs/subscriber "
                "| B/subscriber | first p50 (ms) | last p50 (ms) | last p99 (ms) | last max (ms) "
                "| CPU µs/delivery |"
            ),
            "|---|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        lines += [
            f"| {r['log']} | {r['subscribers']:,} | {'own account' if r['filtered'] else 'none'} "
            f"| {r['reader']} | {r['subscribe_s'] + r['start_readers_s']:.2f} "
            f"| {r['subscribe_us_per_subscriber']} | {r['bytes_per_subscriber']:,} "
            f"| {r['first_p50_ms']} | {r['last_p50_ms']} | {r['last_p99_ms']} "
            f"| {r['last_max_ms']} | {'n/a' if r['filtered'] else r['cpu_us_per_delivery']} |"
            for r in fan_outs
        ]
    for r in results:
        if r["experiment"] == "throughput":
            lines += [
                "",
                (
                    f"throughput ({r['callers']} callers through the batcher, {r['seconds']} s "
                    f"each): posting alone {r['posted_alone_per_s']:,} transfers/s; with one "
                    f"subscriber {r['posted_watched_per_s']:,} transfers/s, consumed "
                    f"{r['consumed_per_s']:,} events/s, {r['lag_events_at_stop']} events behind "
                    f"at the stop, caught up in {r['catch_up_ms']} ms, moved to the log "
                    f"{r['moved_to_log']} times; the whole ledger ({r['replayed_events']:,} "
                    f"events) replayed from the log at {r['replayed_per_s']:,} events/s"
                ),
            ]
    slow = [result for result in results if result["experiment"] == "slow"]
    if slow:
        lines += [
            "",
            (
                "| readers | non-readers | RSS growth (MiB) after 0 / 1 / 2 / 3 / 4 buffers of "
                "events | delivered to readers (s) | every reader got all "
                "| non-reader holds at most |"
            ),
            "|--:|--:|---|--:|---|--:|",
        ]
        lines += [
            f"| {r['readers']:,} | {r['non_readers']:,} "
            f"| {' / '.join(str(v) for v in r['rss_growth_mib_by_events'].values())} "
            f"| {r['delivered_to_readers_s']} | {r['every_reader_got_every_event']} "
            f"| {r['most_events_held_by_a_non_reader']} events |"
            for r in slow
        ]
    lines += _catch_up_lines(results) + _idle_lines(results)
    return "\n".join(lines)


def _catch_up_lines(results: Sequence[dict[str, Any]]) -> list[str]:
    catch_ups = [result for result in results if result["experiment"] == "catchup"]
    if not catch_ups:
        return []
    return [
        "",
        (
            "| subscribers | from | reads | caught up or failed (s) | log reads "
            "| events delivered | failed | posts meanwhile: done, p50 / max (ms), failed |"
        ),
        "|--:|---|---|--:|--:|--:|--:|---|",
        *(
            f"| {r['subscribers']:,} "
            f"| {'spread over' if r['spread'] else 'one position'} {r['behind']:,} back "
            f"| {'as serve reads' if r['shared'] else 'each its own, at once'} "
            f"| {r['caught_up_s']} | {r['log_reads']:,} | {r['events_delivered']:,} "
            f"| {r['failed']:,} {' '.join(r['failed_with'])} "
            f"| {r['posts']}, {r['post_p50_ms']} / {r['post_max_ms']}, {r['posts_failed']} |"
            for r in catch_ups
        ),
    ]


def _idle_lines(results: Sequence[dict[str, Any]]) -> list[str]:
    idle = [result for result in results if result["experiment"] == "idle"]
    if not idle:
        return []
    return [
        "",
        "| ledgers watched, nothing committed | queries to the log per second |",
        "|--:|--:|",
        *(f"| {r['ledgers']:,} | {r['queries_per_s']:,} |" for r in idle),
    ]


def _machine() -> dict[str, Any]:
    commit = subprocess.run(  # noqa: S603 - a fixed git command
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],  # noqa: S607 - git on PATH
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "commit": commit,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "gc_freeze": Settings().gc_freeze,
        "gc_gen0_threshold": Settings().gc_gen0_threshold,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 and 1,000 subscribers, one interpreter: < 1 min"
    )
    parser.add_argument(
        "--only", default=",".join(EXPERIMENTS), help=f"of {', '.join(EXPERIMENTS)}"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the 100k fan-out")
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL, help="a PostgreSQL server")
    parser.add_argument("--output", type=Path, default=RESULTS / "streams.json")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # one case, in this interpreter
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()

    if arguments.case is not None:
        result = asyncio.run(
            run_case(json.loads(arguments.case), arguments.database_url, arguments.profile_to)
        )
        print(json.dumps(result))
        return 0

    only = [name.strip() for name in arguments.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(EXPERIMENTS))
    if unknown:
        parser.error(f"unknown experiment {unknown[0]!r}; known: {', '.join(EXPERIMENTS)}")
    RESULTS.mkdir(exist_ok=True)
    machine_before = _machine()
    server = ServerAddress.from_url(arguments.server_url)
    database_url = arguments.server_url.rsplit("/", 1)[0] + f"/{DATABASE}"
    began = time.monotonic()
    results: list[dict[str, Any]] = []
    asyncio.run(recreate_database(server, DATABASE))
    try:
        asyncio.run(prepare_database(database_url))
        # --quick saves the interpreters' start-up (seconds each): its memory figures are
        # rougher, each case's heap growing into what the previous ones freed.
        run = _in_this_interpreter if arguments.quick else _in_a_fresh_interpreter
        for case in plan(quick=arguments.quick, only=only):
            result = run(case, database_url, None)
            print(json.dumps(result), flush=True)
            results.append(result)
            if arguments.profile and _profiled(case):
                # Once more under the profiler, which slows every call: its figures are not kept.
                run(case, database_url, PROFILE)
                print(f"profile: {PROFILE}", flush=True)
    finally:
        asyncio.run(drop_database(server, DATABASE))
    report = {
        "quick": arguments.quick,
        "machine": machine_before,
        "load_average_after": [round(load, 2) for load in os.getloadavg()],
        "elapsed_s": round(time.monotonic() - began),
        "results": results,
    }
    arguments.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{_table(results)}\n\n{arguments.output} ({report['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
