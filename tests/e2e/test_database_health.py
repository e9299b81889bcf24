"""Readiness and gRPC health say whether the database can take writes, not only reads.

Issue 11, item 1: a SQLite database whose write lock was held answered every read, so
``/readyz`` and the gRPC health service said all was well while every posting failed. Here
another process holds the write lock (or, on PostgreSQL, the database turns read-only): both
probes must report it, and recover when it is over.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg
import grpc
import httpx
from grpc_health.v1 import health_pb2
from sqlalchemy.engine import make_url

from ledgerd.main.migrations import MIGRATIONS
from ledgerd.platform.db.engine import create_engine
from tests.e2e.grpc.test_serve import Served, ledgerd_serve

REST = re.compile(r"^REST\s+(http://127\.0\.0\.1:\d+)/v1/ledgers$")
LEDGER_SERVICE = "ledgerd.v1.LedgerService"
# The server probes this often in the test (the default is 5 s).
HEALTH_INTERVAL_S = "0.1"
# Upper bound for a probe to notice a change; the server's own probe gives up after 2 s.
NOTICE_WITHIN_S = 20.0


@asynccontextmanager
async def _serving(url: str) -> AsyncIterator[tuple[Served, str]]:
    async with ledgerd_serve(url, health_interval_seconds=HEALTH_INTERVAL_S) as served:
        line = await served.read_until(lambda text: REST.match(text) is not None)
        match = REST.match(line)
        assert match is not None
        yield served, match.group(1)


async def _ready(http: httpx.AsyncClient) -> tuple[bool, str]:
    response = await http.get("/readyz")
    body = response.json()
    assert (response.status_code == 200) == body["ready"], body
    return body["ready"], body.get("reason", "")


async def _until_ready(http: httpx.AsyncClient, *, ready: bool) -> str:
    """Wait until readiness says ``ready``; the reason it gives then."""
    async with asyncio.timeout(NOTICE_WITHIN_S):
        while True:
            now, reason = await _ready(http)
            if now == ready:
                return reason
            await asyncio.sleep(0.05)


async def _grpc_status(channel: grpc.aio.Channel, service: str) -> int:
    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    response = await check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    return int(response.status)


async def _until(channel: grpc.aio.Channel, status: int) -> None:
    async with asyncio.timeout(NOTICE_WITHIN_S):
        while True:
            statuses = {await _grpc_status(channel, name) for name in ("", LEDGER_SERVICE)}
            if statuses == {status}:
                return
            await asyncio.sleep(0.05)


@contextmanager
def _write_lock_held(path: Path) -> Iterator[None]:
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()


async def test_sqlite_whose_write_lock_is_held_is_not_ready(tmp_path: Path) -> None:
    path = tmp_path / "served.db"
    async with (
        _serving(f"sqlite+aiosqlite:///{path}") as (served, base),
        httpx.AsyncClient(base_url=base, timeout=30) as http,
        grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel,
    ):
        assert await _ready(http) == (True, "")
        await _until(channel, health_pb2.HealthCheckResponse.SERVING)

        with _write_lock_held(path):
            # Not at once: a write committed within the probe's timeout (the relay records
            # itself every few seconds) answers "writable" without asking for the lock.
            reason = await _until_ready(http, ready=False)
            assert "write lock" in reason
            await _until(channel, health_pb2.HealthCheckResponse.NOT_SERVING)

        assert await _ready(http) == (True, "")
        await _until(channel, health_pb2.HealthCheckResponse.SERVING)
        served.process.send_signal(signal.SIGTERM)
        assert await served.wait_for_exit() == 0, served.log
    # Each change is logged once, not once per probe.
    assert served.log.count("the database cannot take writes") == 1, served.log
    assert served.log.count("the database takes writes again") == 1, served.log


async def _set_read_only(postgres_url: str, *, read_only: bool) -> None:
    """Make new sessions of the database read-only (or not), and end the existing ones."""
    url = make_url(postgres_url)
    # From the server's maintenance database: the test's own may be read-only already.
    admin = url.set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        setting = "on" if read_only else "off"
        await connection.execute(
            f'ALTER DATABASE "{url.database}" SET default_transaction_read_only = {setting}'
        )
        await connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            url.database,
        )
    finally:
        await connection.close()


async def test_a_read_only_postgres_is_not_ready(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        await MIGRATIONS.upgrade(engine)
    finally:
        await engine.dispose()
    async with (
        _serving(postgres_url) as (served, base),
        httpx.AsyncClient(base_url=base, timeout=30) as http,
        grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel,
    ):
        assert await _ready(http) == (True, "")
        await _set_read_only(postgres_url, read_only=True)
        try:
            reason = await _until_ready(http, ready=False)
            assert "read-only" in reason
            await _until(channel, health_pb2.HealthCheckResponse.NOT_SERVING)
        finally:
            await _set_read_only(postgres_url, read_only=False)
        await _until_ready(http, ready=True)
        await _until(channel, health_pb2.HealthCheckResponse.SERVING)
