"""Relays record themselves in ``outbox_relays``: on both databases, through outages too.

A relay's row is made by its first heartbeat, refreshed by the next, removed on a clean stop;
a relay that died leaves a row that turns stale, then is forgotten by any other relay. Where
it publishes is stored without credentials, whatever it was given.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.main.migrations import MIGRATIONS
from ledgerd.main.relay_report import NO_RELAY_ACTIVE, relay_lines
from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork
from ledgerd.platform.outbox.presence import (
    FORGET_AFTER,
    HEARTBEAT_INTERVAL_S,
    STALE_AFTER,
    RelayPresence,
)
from ledgerd.platform.outbox.store import OutboxStore, RelayIdentity, RelaySeen
from ledgerd.platform.outbox.tables import outbox_relays
from tests.fakes.clock import ManualClock
from tests.fakes.tcp_proxy import TcpProxy

STARTED = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
SECRET = "s3cret-pa55"
WAIT_LIMIT_S = 30.0  # a bound for a hung heartbeat to fail the test, not a measurement


def _relay(name: str, destination: str = "nats://127.0.0.1:4222") -> RelayIdentity:
    return RelayIdentity(
        id=f"relay-{name}",
        publisher="nats",
        destination=destination,
        host="box-1",
        pid=4321,
        command="worker",
        started_at=STARTED,
    )


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await MIGRATIONS.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(STARTED)


@pytest.fixture
def store(engine: AsyncEngine, clock: ManualClock) -> OutboxStore:
    return OutboxStore(SqlAlchemyUnitOfWork(engine), now=clock.now)


async def test_a_heartbeat_registers_the_relay_and_the_next_refreshes_it(
    store: OutboxStore, clock: ManualClock
) -> None:
    relay = _relay("a")
    assert await store.relays() == []

    assert await RelayPresence(store, relay).heartbeat() is True
    assert await store.relays() == [RelaySeen(relay, STARTED)]

    later = clock.advance(timedelta(seconds=HEARTBEAT_INTERVAL_S))
    assert await RelayPresence(store, relay).heartbeat() is True
    # One row still, its start kept, its last sighting moved.
    assert await store.relays() == [RelaySeen(relay, later)]


async def test_running_it_refreshes_the_row_until_stopped(
    store: OutboxStore, clock: ManualClock
) -> None:
    presence = RelayPresence(store, _relay("steady"), interval_s=0.05)
    stop = asyncio.Event()
    running = asyncio.create_task(presence.run(stop))
    try:
        later = clock.advance(timedelta(seconds=HEARTBEAT_INTERVAL_S))
        async with asyncio.timeout(WAIT_LIMIT_S):
            while True:  # until a heartbeat of ``run`` has recorded the later time
                if await store.relays() == [RelaySeen(presence.relay, later)]:
                    break
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await running
    assert await store.relays() == [RelaySeen(presence.relay, later)]


async def test_relays_are_listed_most_recently_seen_first(
    store: OutboxStore, clock: ManualClock
) -> None:
    quiet, busy = _relay("quiet"), _relay("busy")
    await RelayPresence(store, quiet).heartbeat()
    await RelayPresence(store, busy).heartbeat()
    clock.advance(timedelta(seconds=2))
    await RelayPresence(store, busy).heartbeat()
    assert [seen.relay.id for seen in await store.relays()] == [busy.id, quiet.id]


async def test_a_clean_stop_removes_only_the_relays_own_row(store: OutboxStore) -> None:
    leaving, staying = RelayPresence(store, _relay("leaving")), RelayPresence(store, _relay("b"))
    await leaving.heartbeat()
    await staying.heartbeat()

    await leaving.withdraw()
    assert [seen.relay for seen in await store.relays()] == [staying.relay]


async def test_a_silent_relay_is_shown_stale_and_none_active(
    store: OutboxStore, clock: ManualClock
) -> None:
    await RelayPresence(store, _relay("gone")).heartbeat()
    fresh = await store.relays()
    just_in_time = STARTED + STALE_AFTER
    [line] = relay_lines(fresh, just_in_time)
    assert line == (
        "relay: nats (nats://127.0.0.1:4222) in worker, pid 4321 on box-1, last active 15 s ago"
    )

    clock.advance(timedelta(minutes=5))
    lines = relay_lines(await store.relays(), clock.now())
    stale = (
        "relay: nats (nats://127.0.0.1:4222) in worker, pid 4321 on box-1, "
        "stale: last active 5 min ago (likely dead)"
    )
    assert lines == [stale, NO_RELAY_ACTIVE]


async def test_a_relay_silent_for_a_day_is_forgotten_by_another(
    store: OutboxStore, clock: ManualClock
) -> None:
    dead, old, alive = _relay("dead"), _relay("old"), _relay("alive")
    await RelayPresence(store, dead).heartbeat()
    clock.advance(timedelta(seconds=2))
    await RelayPresence(store, old).heartbeat()

    clock.advance(FORGET_AFTER - timedelta(seconds=1))
    await RelayPresence(store, alive).heartbeat()
    # Silent for a day and a second: forgotten; for a second less than a day: kept.
    assert [seen.relay.id for seen in await store.relays()] == [alive.id, old.id]

    # A relay forgotten while it could not say it was alive is recorded again when it can.
    clock.advance(FORGET_AFTER + timedelta(seconds=1))
    await RelayPresence(store, alive).heartbeat()
    assert [seen.relay.id for seen in await store.relays()] == [alive.id]
    await RelayPresence(store, dead).heartbeat()
    assert {seen.relay.id for seen in await store.relays()} == {alive.id, dead.id}


@pytest.mark.parametrize(
    ("destination", "stored"),
    [
        (f"nats://relay:{SECRET}@127.0.0.1:4222", "nats://127.0.0.1:4222"),
        (f"amqp://guest:{SECRET}@127.0.0.1:5672/%2F?auth={SECRET}", "amqp://127.0.0.1:5672/%2F"),
        (f"relay:{SECRET}@kafka-1:9092,kafka-2:9092", "kafka-1:9092,kafka-2:9092"),
    ],
)
async def test_no_credential_reaches_the_database(
    store: OutboxStore, engine: AsyncEngine, destination: str, stored: str
) -> None:
    await RelayPresence(store, _relay("careful", destination)).heartbeat()

    async with engine.connect() as connection:
        [row] = (await connection.execute(select(outbox_relays))).all()
    assert SECRET not in repr(tuple(row))
    assert row.destination == stored


# --- outages ---------------------------------------------------------------------------------


@pytest.fixture
async def proxy(postgres_url: str) -> AsyncIterator[TcpProxy]:
    url = make_url(postgres_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    yield proxy
    await proxy.aclose()


async def test_a_database_outage_is_logged_and_the_next_heartbeat_recovers(
    postgres_url: str, proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    direct = create_engine(postgres_url)
    await MIGRATIONS.upgrade(direct)
    url = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
    cut_off = create_engine(
        url.render_as_string(hide_password=False),
        pool_timeout_s=0.5,
        connect_timeout_s=0.5,
        statement_timeout_s=0.5,
    )
    try:
        presence = RelayPresence(OutboxStore(SqlAlchemyUnitOfWork(cut_off)), _relay("unlucky"))
        async with proxy.outage():
            with caplog.at_level(logging.WARNING, logger="ledgerd.platform.outbox.presence"):
                assert await presence.heartbeat() is False
                assert await presence.heartbeat() is False
                await presence.withdraw()  # a clean stop in an outage: no error either
        # No traceback in them: an outage is expected, and logged at DEBUG in full.
        warnings = [r for r in caplog.records if r.name == "ledgerd.platform.outbox.presence"]
        # A heartbeat's line (the second is held back) and the withdrawal's.
        assert len(warnings) == 2, caplog.text
        assert "could not record the outbox relay as running" in warnings[0].getMessage()
        assert "it will turn stale" in warnings[1].getMessage()
        assert all(record.exc_info is None for record in warnings)

        assert await presence.heartbeat() is True
        seen = await OutboxStore(SqlAlchemyUnitOfWork(direct)).relays()
        assert [s.relay.id for s in seen] == [presence.relay.id]
    finally:
        await cut_off.dispose()
        await direct.dispose()
