"""The outbox relayed by the real processes to the machine's brokers, end to end.

The in-process tests (tests/integration/outbox, tests/integration/messaging) check each piece;
these run the ``ledgerd`` console script the way an operator does, configured by environment
alone, and read what reaches the broker with the adapters' own subscribers:

- ``ledgerd worker`` on PostgreSQL relays to NATS JetStream what a server in another process
  commits, and on SIGTERM publishes what was committed before it exits;
- killed with SIGKILL in the middle of a backlog and started again, it loses nothing: a
  consumer deduplicating by id sees each event once, in its ledger's order;
- ``ledgerd serve`` on the embedded SQLite relays by itself (``LEDGERD_RELAY_IN_SERVE=auto``)
  to Redis Streams, and its last sweep on SIGTERM publishes what the last calls committed.

Each test gives its process a NATS stream and subject prefix, or a Redis stream key, of its
own (``LEDGERD_NATS_STREAM``, ``LEDGERD_NATS_SUBJECT_PREFIX``, ``LEDGERD_REDIS_STREAM``), so
tests running at the same time on the shared brokers never see each other's events, and
deletes it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import nats
import nats.js.errors
import pytest
import redis.asyncio

from ledgerd.ledger.published.events import decode
from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.nats import NatsSubscriber
from ledgerd.platform.messaging.ports import BrokerUnavailableError, Subscriber
from ledgerd.platform.messaging.redis_streams import RedisStreamsSubscriber, dedupe_key
from ledgerd.platform.outbox.store import OutboxStore, StreamLag
from ledgerd.v1 import events_pb2
from ledgerd.v1 import ledger_pb2 as pb
from tests.conftest import service_unavailable
from tests.e2e.grpc.conftest import running_api
from tests.e2e.grpc.test_serve import (
    STOPPED,
    Served,
    client,
    ledgerd_serve,
    running_ledgerd,
    says,
)
from tests.integration.messaging.contract import Collected, assert_delivered_in_order, collect
from tests.integration.messaging.test_nats import SHARED_NATS_URL
from tests.integration.messaging.test_redis_streams import SHARED_REDIS_URL

if TYPE_CHECKING:
    from ledgerd.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

# Given to the processes as LEDGERD_SHUTDOWN_GRACE_SECONDS; a clean stop must end within it.
GRACE_S = 10.0
# Upper bound for one API call; none comes near it.
CALL_TIMEOUT_S = 30.0
# Large enough that the relay is still busy when the test sees its first events arrive.
BACKLOG = 3000
# Events per publish (claim): the backlog takes many, so by the time of the kill some progress
# is typically recorded and the claim in flight is not (its events go out again after).
RELAY_BATCH = 200
# The first worker is killed once this many of the ledger's events have reached NATS.
KILL_AFTER = 300
POST_BATCH = 500
# The events a ledger starts with: LedgerCreated, then an AccountCreated per account.
ACCOUNTS = ("bank", "alice")
OPENING = ["ledgerd.v1.LedgerCreated"] + ["ledgerd.v1.AccountCreated"] * len(ACCOUNTS)
TRANSFER_POSTED = "ledgerd.v1.TransferPosted"
WORKER_RUNNING = "worker running: outbox relay to "
WORKER_STOPPED = "worker stopped"
RELAY_IN_SERVE = "relay outbox events to redis"
# How the short-lived admin connections fail fast instead of retrying for minutes.
ADMIN_TIMEOUT_S = 2.0


def _ledger_id() -> str:
    return f"e2e-relay-{uuid.uuid4().hex[:12]}"


# --- the brokers' side -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Watched:
    """Where a test watches: its ledger, a subscriber, the settings that send events there."""

    ledger: str
    subscriber: Subscriber
    settings: dict[str, str]


@pytest.fixture
async def nats_watch() -> AsyncIterator[Watched]:
    """A stream of the test's own and a durable consumer of it, made before anything is sent.

    A new consumer starts with what is published after it exists, so it must come first.
    """
    ledger = _ledger_id()
    tag = uuid.uuid4().hex[:12]
    stream, prefix = f"LEDGERD_E2E_{tag.upper()}", f"ledgerd.e2e{tag}.events"
    try:
        subscriber = await NatsSubscriber.connect(
            SHARED_NATS_URL,
            "watcher",
            stream=stream,
            subject_prefix=prefix,
            fetch_wait_s=0.5,
            reconnect_wait_s=0.2,
        )
    except BrokerUnavailableError as error:
        service_unavailable(f"no NATS with JetStream: {error}")
    settings = {"nats_stream": stream, "nats_subject_prefix": prefix}
    try:
        yield Watched(ledger, subscriber, settings)
    finally:
        await subscriber.aclose()
        await _delete_nats_stream(stream)


async def _delete_nats_stream(stream: str) -> None:
    connection = await nats.connect(
        SHARED_NATS_URL, connect_timeout=ADMIN_TIMEOUT_S, max_reconnect_attempts=1
    )
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await connection.jetstream(timeout=ADMIN_TIMEOUT_S).delete_stream(stream)
    finally:
        await connection.close()


@pytest.fixture
async def redis_watch() -> AsyncIterator[Watched]:
    """A stream key of the test's own and a consumer group of it, made before anything is sent."""
    ledger = _ledger_id()
    stream = f"ledgerd:e2e:{uuid.uuid4().hex[:12]}:events"
    try:
        subscriber = await RedisStreamsSubscriber.connect(
            SHARED_REDIS_URL, "watcher", stream=stream, block_s=0.2
        )
    except BrokerUnavailableError as error:
        service_unavailable(f"no Redis: {error}")
    try:
        yield Watched(ledger, subscriber, {"redis_stream": stream})
    finally:
        await subscriber.aclose()
        admin = redis.asyncio.Redis.from_url(
            SHARED_REDIS_URL,
            socket_timeout=ADMIN_TIMEOUT_S,
            socket_connect_timeout=ADMIN_TIMEOUT_S,
        )
        try:
            marks = [mark async for mark in admin.scan_iter(match=dedupe_key(stream, "*"))]
            await admin.delete(stream, *marks)
        finally:
            await admin.aclose()


class LedgerArrived:
    """``collect``'s stop condition: ``count`` distinct events of ``ledger`` have arrived.

    It counts as deliveries come rather than rescanning them all each time: a rescan per
    delivery would make a backlog quadratic.
    """

    def __init__(self, ledger: str, count: int) -> None:
        self.ledger = ledger
        self.count = count
        self.arrived = 0
        self._looked_at = 0

    def __call__(self, seen: Collected) -> bool:
        for envelope in seen.order[self._looked_at :]:
            self.arrived += envelope.ledger == self.ledger
        self._looked_at = len(seen.order)
        return self.arrived >= self.count


# --- the processes ---------------------------------------------------------------------------


def ledgerd_worker(database_url: str, **settings: str) -> AbstractAsyncContextManager[Served]:
    """``ledgerd worker`` running on ``database_url``, once it says it is relaying."""
    return running_ledgerd(
        "worker", database_url, lambda line: line.startswith(WORKER_RUNNING), **settings
    )


def _nats_worker(
    database_url: str, watch: Watched, **settings: str
) -> AbstractAsyncContextManager[Served]:
    return ledgerd_worker(
        database_url,
        events_publisher="nats",
        nats_url=SHARED_NATS_URL,
        shutdown_grace_seconds=str(GRACE_S),
        **watch.settings,
        **settings,
    )


async def _stops_cleanly(process: Served, last_word: str) -> None:
    """SIGTERM: the process exits 0 within its grace period, its last log record ``last_word``."""
    process.process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(GRACE_S):
            exit_code = await process.wait_for_exit()
    except TimeoutError:
        pytest.fail(f"still running {GRACE_S} s after SIGTERM:\n{process.log}")
    assert exit_code == 0, process.log
    assert says(process.output[-1], last_word), process.log
    assert "Traceback" not in process.log, process.log


# --- the ledger's side -----------------------------------------------------------------------


async def _open_books(stub: LedgerServiceAsyncStub, ledger: str) -> None:
    await stub.CreateLedger(pb.CreateLedgerRequest(id=ledger), timeout=CALL_TIMEOUT_S)
    for account in ACCOUNTS:
        await stub.CreateAccount(
            pb.CreateAccountRequest(ledger=ledger, id=account, asset="USD/2"),
            timeout=CALL_TIMEOUT_S,
        )


async def _pay(
    stub: LedgerServiceAsyncStub, ledger: str, first: int, count: int
) -> list[pb.Transfer]:
    """Post ``count`` payments (keys ``pay-<first>``...) in batches; the transfers, in order."""
    posted: list[pb.Transfer] = []
    for start in range(first, first + count, POST_BATCH):
        numbers = range(start, min(start + POST_BATCH, first + count))
        response = await stub.PostTransfers(
            pb.PostTransfersRequest(
                ledger=ledger,
                transfers=[
                    pb.TransferInput(
                        idempotency_key=f"pay-{n}",
                        legs=[pb.Leg(debit_account="bank", credit_account="alice", amount=1 + n)],
                    )
                    for n in numbers
                ],
            ),
            timeout=CALL_TIMEOUT_S,
        )
        for result in response.results:
            assert result.WhichOneof("outcome") == "transfer", result
            posted.append(result.transfer)
    return posted


async def _pay_one(stub: LedgerServiceAsyncStub, ledger: str, n: int) -> pb.Transfer:
    return await stub.PostTransfer(
        pb.PostTransferRequest(
            ledger=ledger,
            transfer=pb.TransferInput(
                idempotency_key=f"pay-{n}",
                legs=[pb.Leg(debit_account="bank", credit_account="alice", amount=1 + n)],
            ),
        ),
        timeout=CALL_TIMEOUT_S,
    )


async def _outbox(database_url: str, ledger: str) -> tuple[list[Envelope], StreamLag]:
    """The ledger's events as the outbox holds them, and how far publishing is behind."""
    engine = create_engine(database_url)
    try:
        store = OutboxStore(SqlAlchemyUnitOfWork(engine))
        events: list[Envelope] = []
        while chunk := await store.read(ledger, after=len(events)):
            events += chunk
        lags = {lag.stream: lag for lag in await store.lag()}
        assert await store.dead_letters() == []
    finally:
        await engine.dispose()
    return events, lags[ledger]


def _assert_received(
    seen: Collected, ledger: str, stored: Sequence[Envelope], posted: Sequence[pb.Transfer]
) -> None:
    """Each stored event of ``ledger`` arrived, once after dedup by id, in sequence order.

    Byte for byte as the outbox holds it, numbered 1..N: the opening events, then one
    TransferPosted per transfer posted, showing it exactly as the API returned it.
    """
    assert len(stored) == len(OPENING) + len(posted)
    assert_delivered_in_order(seen, stored)
    mine = [envelope for envelope in seen.order if envelope.ledger == ledger]
    assert [envelope.sequence for envelope in mine] == list(range(1, len(stored) + 1))
    assert [envelope.type for envelope in mine] == OPENING + [TRANSFER_POSTED] * len(posted)
    shown: list[pb.Transfer] = []
    for envelope in mine[len(OPENING) :]:
        message = decode(envelope.type, envelope.data)
        assert isinstance(message, events_pb2.TransferPosted)
        assert len(message.entries) == 2 * len(message.transfer.legs)
        shown.append(message.transfer)
    assert shown == list(posted)


# --- the tests -------------------------------------------------------------------------------


async def test_worker_relays_postgres_commits_to_nats_and_stops_on_sigterm(
    migrated_postgres_url: str, nats_watch: Watched
) -> None:
    ledger = nats_watch.ledger
    # The API runs in this process, on the same database: every commit reaches the worker
    # only through PostgreSQL (NOTIFY, or its poll).
    async with (
        running_api(migrated_postgres_url) as api,
        _nats_worker(migrated_postgres_url, nats_watch) as worker,
    ):
        await _open_books(api.stub, ledger)
        posted = await _pay(api.stub, ledger, 0, 40)
        live = LedgerArrived(ledger, len(OPENING) + len(posted))
        seen = await collect(nats_watch.subscriber, live)

        # Committed just before SIGTERM, noticed by the worker yet or not: its last sweep on the
        # way out must leave nothing committed in the outbox.
        posted += await _pay(api.stub, ledger, 40, 10)
        await _stops_cleanly(worker, WORKER_STOPPED)

    stored, lag = await _outbox(migrated_postgres_url, ledger)
    assert lag.unpublished == 0, lag
    everything = LedgerArrived(ledger, len(stored))
    seen = await collect(nats_watch.subscriber, everything, collected=seen)
    _assert_received(seen, ledger, stored, posted)


@pytest.mark.faults
async def test_a_worker_killed_mid_backlog_loses_nothing(
    migrated_postgres_url: str, nats_watch: Watched
) -> None:
    ledger = nats_watch.ledger
    async with running_api(migrated_postgres_url) as api:
        # The backlog is committed while no worker runs: the first one starts with all of it.
        await _open_books(api.stub, ledger)
        posted = await _pay(api.stub, ledger, 0, BACKLOG)
        total = len(OPENING) + len(posted)

        async with _nats_worker(
            migrated_postgres_url, nats_watch, relay_batch_size=str(RELAY_BATCH)
        ) as doomed:
            seen = await collect(nats_watch.subscriber, LedgerArrived(ledger, KILL_AFTER))
            doomed.process.kill()
            assert await doomed.wait_for_exit() == -signal.SIGKILL, doomed.log
        _, lag = await _outbox(migrated_postgres_url, ledger)
        # Killed with work left, or the test proved nothing about a crash.
        assert lag.unpublished > 0, f"the worker finished the backlog before the kill: {lag}"

        async with _nats_worker(
            migrated_postgres_url, nats_watch, relay_batch_size=str(RELAY_BATCH)
        ) as successor:
            seen = await collect(
                nats_watch.subscriber, LedgerArrived(ledger, total), collected=seen
            )
            await _stops_cleanly(successor, WORKER_STOPPED)

    stored, lag = await _outbox(migrated_postgres_url, ledger)
    assert lag.unpublished == 0, lag
    _assert_received(seen, ledger, stored, posted)


async def test_serve_on_sqlite_relays_to_redis_streams_and_stops_on_sigterm(
    sqlite_url: str, redis_watch: Watched
) -> None:
    ledger = redis_watch.ledger
    settings = {
        "events_publisher": "redis",
        "redis_url": SHARED_REDIS_URL,
        "shutdown_grace_seconds": str(GRACE_S),
        # The default, spelled out so that no LEDGERD_RELAY_IN_SERVE around the test counts.
        "relay_in_serve": "auto",
        **redis_watch.settings,
    }
    async with ledgerd_serve(sqlite_url, **settings) as served, client(served.port) as (stub, _):
        # With SQLite, auto means serve relays itself; it says so once it does.
        await served.read_until(lambda line: says(line, RELAY_IN_SERVE))
        await _open_books(stub, ledger)
        posted = [
            *await _pay(stub, ledger, 0, 25),
            *[await _pay_one(stub, ledger, n) for n in range(25, 30)],
        ]
        live = LedgerArrived(ledger, len(OPENING) + len(posted))
        seen = await collect(redis_watch.subscriber, live)

        # Committed just before SIGTERM, noticed by the relay yet or not: serve stops its relay
        # last, after a final sweep, so nothing committed may be left in the outbox.
        posted += await _pay(stub, ledger, 30, 10)
        await _stops_cleanly(served, STOPPED)

    stored, lag = await _outbox(sqlite_url, ledger)
    assert lag.unpublished == 0, lag
    seen = await collect(redis_watch.subscriber, LedgerArrived(ledger, len(stored)), collected=seen)
    _assert_received(seen, ledger, stored, posted)
