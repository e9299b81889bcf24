"""Dynamic PostgreSQL credentials leased from a real OpenBao's database engine.

The local PostgreSQL trusts local connections, so a password is never checked: what is proved
is the role. A connection runs as the leased role (``current_user``), renewal keeps it, the
role's end (max TTL, forced revocation) brings a new one, and a revoked role is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ledgerd.main.settings import normalise_database_url
from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.secrets.leases import DatabaseLease
from ledgerd.platform.secrets.references import parse_reference
from ledgerd.platform.secrets.secret import Secret
from tests.openbao import OpenBao
from tests.openbao_database import DatabaseEngine, database_engine


@contextlib.asynccontextmanager
async def _leased(
    openbao: OpenBao, database_url: str, *, default_ttl: str, max_ttl: str = "1h"
) -> AsyncIterator[tuple[DatabaseEngine, DatabaseLease]]:
    with database_engine(openbao, database_url, default_ttl=default_ttl, max_ttl=max_ttl) as engine:
        lease = DatabaseLease(
            openbao.address, Secret(openbao.token), parse_reference(engine.reference)
        )
        await lease.obtain()
        try:
            yield engine, lease
        finally:
            await lease.aclose()


def _as_leased(database_url: str, lease: DatabaseLease) -> str:
    credentials = lease.credentials
    return (
        make_url(normalise_database_url(database_url))
        .set(username=credentials.username, password=credentials.password.reveal())
        .render_as_string(hide_password=False)
    )


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _role_exists(server_url: str, role: str) -> bool:
    admin = await asyncpg.connect(_libpq(server_url))
    try:
        return bool(await admin.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", role))
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def _running(lease: DatabaseLease) -> AsyncIterator[list[str]]:
    """``lease.run`` in the background; the list of the usernames retired, in order."""
    retired: list[str] = []
    in_use = [lease.credentials.username]

    async def retire() -> None:
        retired.append(in_use[-1])
        in_use.append(lease.credentials.username)

    stop = asyncio.Event()
    running = asyncio.create_task(lease.run(stop, retire))
    try:
        yield retired
    finally:
        stop.set()
        await running


async def test_a_connection_runs_as_the_leased_role_which_a_revocation_drops(
    openbao: OpenBao, postgres_server_url: str, postgres_url_factory: Callable[[], str]
) -> None:
    database_url = postgres_url_factory()
    async with _leased(openbao, database_url, default_ttl="60s") as (engine, lease):
        username = lease.credentials.username
        connection = await asyncpg.connect(
            make_url(_as_leased(database_url, lease))
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        assert await connection.fetchval("SELECT current_user") == username
        [lease_id] = engine.lease_ids()
        assert lease_id == lease.lease_id
        engine.revoke(lease_id)
        # Its sessions are ended and the role dropped.
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
            await connection.fetchval("SELECT 1")
        assert not await _role_exists(postgres_server_url, username)


async def test_the_lease_is_renewed_at_two_thirds_of_its_duration(
    openbao: OpenBao, postgres_url_factory: Callable[[], str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ledgerd.platform.secrets.leases")
    async with _leased(openbao, postgres_url_factory(), default_ttl="3s") as (engine, lease):
        username = lease.credentials.username
        [lease_id] = engine.lease_ids()
        first_expiry = engine.lease(lease_id)["expire_time"]
        async with _running(lease) as retired:
            await asyncio.sleep(3.5)  # due at 2 s, then at 4 s
        assert engine.lease(lease_id)["expire_time"] != first_expiry
        assert (lease.credentials.username, lease.lease_id, retired) == (username, lease_id, [])
        password = lease.credentials.password.reveal()
    renewals = [r for r in caplog.records if "lease renewed" in r.getMessage()]
    assert len(renewals) == 1, caplog.text
    assert username in caplog.text
    assert password not in caplog.text


async def test_a_lease_at_its_max_ttl_is_replaced_before_it_ends(
    openbao: OpenBao, postgres_url_factory: Callable[[], str]
) -> None:
    async with _leased(openbao, postgres_url_factory(), default_ttl="3s", max_ttl="4s") as (
        _engine,
        lease,
    ):
        first = lease.credentials.username
        async with _running(lease) as retired:
            # Renewed at 2 s for the 2 s left of its max TTL; replaced at ~3.3 s.
            await asyncio.sleep(3.8)
        assert lease.credentials.username != first
        assert retired == [first]


async def test_a_revoked_role_refused_at_connect_is_replaced_at_once(
    openbao: OpenBao, postgres_server_url: str, postgres_url_factory: Callable[[], str]
) -> None:
    database_url = postgres_url_factory()
    async with _leased(openbao, database_url, default_ttl="60s") as (engine, lease):
        first = lease.credentials.username
        sql = create_engine(
            _as_leased(database_url, lease),
            current_url=lambda: _as_leased(database_url, lease),
            credentials_refused=lease.replace_refused,
        )
        try:
            async with sql.connect() as connection:
                assert (await connection.execute(text("SELECT current_user"))).scalar() == first
            [lease_id] = engine.lease_ids()
            engine.revoke(lease_id)
            # The pooled connection was ended; pre-ping drops it, the reconnect is refused
            # (no such role), new credentials are leased and the reconnect succeeds.
            async with sql.connect() as connection:
                now = (await connection.execute(text("SELECT current_user"))).scalar()
        finally:
            await sql.dispose()
        assert now == lease.credentials.username != first
        assert not await _role_exists(postgres_server_url, first)
