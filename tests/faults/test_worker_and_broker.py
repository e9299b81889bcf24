"""The outbox relay of ``ledgerd worker`` rides out a broker outage and a SIGKILL of itself.

A short version of the outage checks (tests/integration/messaging, tests/e2e/
test_relaying_processes.py), with the processes as an operator runs them: ``ledgerd worker`` on
PostgreSQL relays to a NATS JetStream server of the test's own (so the test may stop it) what a
server commits (in-process here: commits reach the worker only through PostgreSQL). With a
backlog to relay, the NATS server is stopped, transfers are committed while it is down, it is
started again; then the worker is killed with SIGKILL in the middle of the backlog and another
one started. A consumer that deduplicates by event id must see every event exactly once, in
its ledger's order, byte for byte as the outbox holds it.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork
from ledgerd.platform.messaging.nats import NatsSubscriber
from ledgerd.platform.messaging.ports import BrokerUnavailableError
from ledgerd.platform.outbox.store import OutboxStore, StreamLag
from tests.conftest import service_unavailable
from tests.e2e.grpc.conftest import running_api
from tests.e2e.grpc.test_serve import Served
from tests.e2e.test_relaying_processes import (
    OPENING,
    WORKER_STOPPED,
    LedgerArrived,
    _assert_received,
    _open_books,
    _outbox,
    _pay,
    _stops_cleanly,
    ledgerd_worker,
)
from tests.integration.messaging import test_nats
from tests.integration.messaging.contract import Collected, collect
from tests.integration.messaging.nats_server import NatsServerProcess

# Committed before any worker runs: what the first one starts with.
BACKLOG = 600
# Small claims, so the backlog takes many publishes and a fault finds one under way.
RELAY_BATCH = 20
# The broker is stopped once this many of the ledger's events have arrived.
OUTAGE_AFTER = 3 * RELAY_BATCH
# Committed while the broker is down: the worker has them to publish, and cannot.
DURING_OUTAGE = 40
# Once the broker is back, the worker is killed when this many more events have arrived.
KILL_AFTER_MORE = 3 * RELAY_BATCH
# How the relay says it could not publish (ledgerd.platform.outbox.relay).
PUBLISHING_FAILED = "publishing failed"
GRACE_S = 10.0
RECONNECT_WAIT_S = 0.2
# Upper bound for the relay to publish again after a fault; not a measurement.
PUBLISHING_WAIT_S = 30.0
POLL_S = 0.05


# A nats-server of the test's own, which it may stop: the NATS adapter tests' fixture.
own_nats = test_nats.own_nats


async def test_a_worker_rides_out_a_broker_outage_and_a_sigkill(
    postgres_url: str, own_nats: NatsServerProcess, fault_figures: Callable[[str], None]
) -> None:
    ledger = f"faults-relay-{uuid.uuid4().hex[:8]}"
    tag = uuid.uuid4().hex[:8]
    where = {"nats_stream": f"LEDGERD_FAULTS_{tag.upper()}", "nats_subject_prefix": f"f{tag}.ev"}
    # Made before anything is published: a new durable consumer starts with what comes after.
    try:
        subscriber = await NatsSubscriber.connect(
            own_nats.url,
            "watcher",
            stream=where["nats_stream"],
            subject_prefix=where["nats_subject_prefix"],
            fetch_wait_s=0.5,
            reconnect_wait_s=RECONNECT_WAIT_S,
        )
    except BrokerUnavailableError as error:
        service_unavailable(f"the test's nats-server does not answer: {error}")

    def worker() -> AbstractAsyncContextManager[Served]:
        return ledgerd_worker(
            postgres_url,
            events_publisher="nats",
            nats_url=own_nats.url,
            relay_batch_size=str(RELAY_BATCH),
            shutdown_grace_seconds=str(GRACE_S),
            **where,
        )

    engine = create_engine(postgres_url)
    outbox = OutboxStore(SqlAlchemyUnitOfWork(engine))
    try:
        async with running_api(postgres_url) as api:
            await _open_books(api.stub, ledger)
            posted = await _pay(api.stub, ledger, 0, BACKLOG)

            async with worker() as doomed:
                seen = await collect(subscriber, LedgerArrived(ledger, OUTAGE_AFTER))
                async with own_nats.outage():
                    posted += await _pay(api.stub, ledger, BACKLOG, DURING_OUTAGE)
                    # The worker found the broker gone with events to publish.
                    await doomed.read_until(lambda line: PUBLISHING_FAILED in line)
                    published = (await _lag(outbox, ledger)).published_sequence
                    assert published < len(OPENING) + len(posted)
                broker_recovery_s = await _publishing_again(
                    outbox, ledger, published, since=time.monotonic()
                )
                # Publishing again: a few claims' worth arrive, and the worker is killed.
                more = LedgerArrived(ledger, len(seen.unique) + KILL_AFTER_MORE)
                seen = await collect(subscriber, more, collected=seen)
                doomed.process.kill()
                assert await doomed.wait_for_exit() == -signal.SIGKILL, doomed.log
            lag = await _lag(outbox, ledger)
            # Killed with work left, or the test proved nothing about a crash.
            assert lag.unpublished > 0, f"the worker finished the backlog before the kill: {lag}"

            spawned = time.monotonic()
            async with worker() as successor:
                worker_recovery_s = await _publishing_again(
                    outbox, ledger, lag.published_sequence, since=spawned
                )
                everything = LedgerArrived(ledger, len(OPENING) + len(posted))
                seen = await collect(subscriber, everything, collected=seen)
                await _stops_cleanly(successor, WORKER_STOPPED)
    finally:
        await subscriber.aclose()
        await engine.dispose()

    stored, lag = await _outbox(postgres_url, ledger)
    lost = [envelope.id for envelope in stored if envelope.id not in seen.unique]
    fault_figures(_summary(seen, len(stored), len(lost), broker_recovery_s, worker_recovery_s))
    assert lag.unpublished == 0, lag
    _assert_received(seen, ledger, stored, posted)  # each once, in order, byte for byte


async def _lag(outbox: OutboxStore, ledger: str) -> StreamLag:
    return {lag.stream: lag for lag in await outbox.lag()}[ledger]


async def _publishing_again(
    outbox: OutboxStore, ledger: str, published: int, *, since: float
) -> float:
    """Wait until the ledger's events are published beyond ``published``; seconds ``since``."""
    async with asyncio.timeout(PUBLISHING_WAIT_S):
        while True:
            if (await _lag(outbox, ledger)).published_sequence > published:
                return time.monotonic() - since
            await asyncio.sleep(POLL_S)  # polling the outbox's cursor, not timing anything


def _summary(seen: Collected, events: int, lost: int, broker_s: float, worker_s: float) -> str:
    return (
        f"worker -> NATS on postgresql: {events} events, {seen.deliveries} deliveries "
        f"({seen.deliveries - len(seen.unique)} of them again, dropped by id), lost {lost}\n"
        f"  publishing again {broker_s:.2f} s after the broker was back, "
        f"{worker_s:.2f} s after the new worker was spawned"
    )
