"""The outbox under concurrency on PostgreSQL: writers, several relays, a killed relay, NOTIFY."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ledgerd.platform.concurrency import Notifier
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.messaging.hub import InProcessHub
from ledgerd.platform.outbox.listener import libpq_dsn, listen_for_commits
from ledgerd.platform.outbox.relay import OutboxRelay, RelayOptions
from ledgerd.platform.outbox.store import OutboxStore
from tests.integration.conftest import LedgerApp, open_ledger_app
from tests.integration.outbox.helpers import (
    DELIVERY_WAIT_S,
    FlakyPublisher,
    open_books,
    pay,
    payloads,
    receive,
)

WRITERS = 16
PER_WRITER = 10


@pytest.fixture
async def app(postgres_url: str) -> AsyncIterator[LedgerApp]:
    # Unbatched: every call its own transaction, so commits really race each other. Six
    # ledgers' writers (96) share 32 connections and queue for them by design: a wide pool
    # bound, since the default's 5 s (a server's answer to overload) is not under test here.
    async with open_ledger_app(
        postgres_url,
        pool_size=WRITERS,
        settings={"batching": False, "database_pool_timeout_seconds": 60},
    ) as app:
        yield app


async def _post_concurrently(app: LedgerApp, ledger: str, tag: str) -> None:
    async def writer(number: int) -> None:
        for n in range(PER_WRITER):
            await app.post.post_one(ledger, pay(f"{tag}-{number}-{n}", "bank", "alice", 1))

    async with asyncio.TaskGroup() as writers:
        for number in range(WRITERS):
            writers.create_task(writer(number))


def _relay(
    app: LedgerApp, publisher: FlakyPublisher | InProcessHub, **options: float
) -> OutboxRelay:
    return OutboxRelay(
        OutboxStore(SqlAlchemyUnitOfWork(app.engine)),
        publisher,
        options=RelayOptions(batch_size=int(options.get("batch_size", 500))),
    )


async def test_concurrent_commits_get_gap_free_sequences_in_chain_order(app: LedgerApp) -> None:
    hub = await app.container.get(InProcessHub)
    subscription = hub.subscribe()
    await open_books(app, "books", "bank", "alice")
    await _post_concurrently(app, "books", "w")

    total = 3 + WRITERS * PER_WRITER  # the ledger, two accounts, the transfers
    assert await _relay(app, hub).sweep() == total
    received = await receive(subscription, total)
    assert [envelope.sequence for envelope in received] == list(range(1, total + 1))
    # Events were numbered in commit order: the transfers' chain order, exactly.
    chain = [message.transfer.sequence for message in payloads(received[3:])]  # type: ignore[attr-defined]
    assert chain == list(range(1, WRITERS * PER_WRITER + 1))


async def test_several_relays_publish_each_event_once_in_ledger_order(app: LedgerApp) -> None:
    hub = await app.container.get(InProcessHub)
    subscription = hub.subscribe()
    ledgers = [f"l{n}" for n in range(6)]
    for ledger in ledgers:
        await open_books(app, ledger, "bank", "alice")
    relays = [_relay(app, hub, batch_size=7) for _ in range(3)]
    stop = asyncio.Event()

    async with asyncio.TaskGroup() as work:
        for relay in relays:
            work.create_task(relay.run(stop))
        for ledger in ledgers:
            work.create_task(_post_concurrently(app, ledger, ledger))
        expected = len(ledgers) * (3 + WRITERS * PER_WRITER)
        received = await receive(subscription, expected)
        stop.set()

    # Nothing more than that arrives later (no double publishing) ...
    assert sum(relay.stats.published for relay in relays) == expected
    assert len({envelope.id for envelope in received}) == expected
    # ... each ledger's events arrived in their order, and more than one relay did the work.
    by_ledger: dict[str, list[int]] = {}
    for envelope in received:
        by_ledger.setdefault(envelope.ledger, []).append(envelope.sequence)
    assert all(sequences == sorted(sequences) for sequences in by_ledger.values())
    assert sum(1 for relay in relays if relay.stats.published) > 1


async def test_a_relay_killed_mid_publish_loses_nothing(app: LedgerApp) -> None:
    hub = await app.container.get(InProcessHub)
    subscription = hub.subscribe()
    await open_books(app, "books", "bank", "alice")
    for n in range(20):
        await app.post.post_one("books", pay(f"t{n}", "bank", "alice", 1))
    stuck = FlakyPublisher(hub)
    stuck.gate = asyncio.Event()  # never set: publish hangs, as on a dead connection
    doomed = asyncio.create_task(_relay(app, stuck).sweep())
    async with asyncio.timeout(DELIVERY_WAIT_S):
        await stuck.entered.wait()
    doomed.cancel()  # the relay dies with its claim open
    with pytest.raises(asyncio.CancelledError):
        await doomed

    assert await _relay(app, hub).sweep() == 23
    received = await receive(subscription, 23)
    assert [envelope.sequence for envelope in received] == list(range(1, 24))


async def test_a_commit_elsewhere_wakes_a_listening_relay(
    app: LedgerApp, postgres_url: str
) -> None:
    """NOTIFY, not polling: the relay here polls once an hour, the writer is another app."""
    hub = await app.container.get(InProcessHub)
    subscription = hub.subscribe()
    wakeups = Notifier()
    relay = OutboxRelay(
        OutboxStore(SqlAlchemyUnitOfWork(app.engine)),
        hub,
        wakeups=wakeups,
        options=RelayOptions(poll_interval_s=3600),
    )
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as work:
        work.create_task(relay.run(stop))
        work.create_task(listen_for_commits(libpq_dsn(app.engine.url), relay.wake, stop))
        # Wait until the listener is connected (it wakes the relay once when it is).
        async with asyncio.timeout(DELIVERY_WAIT_S):
            await wakeups.changed(since=0)
        async with open_ledger_app(postgres_url, migrate=False) as elsewhere:
            await open_books(elsewhere, "books", "bank")
        received: list[Envelope] = await receive(subscription, 2)
        stop.set()
    assert [envelope.type for envelope in received] == [
        "ledgerd.v1.LedgerCreated",
        "ledgerd.v1.AccountCreated",
    ]
