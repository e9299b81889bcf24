"""The write probe behind readiness and gRPC health: busy is not broken.

A flood of postings left gRPC health NOT_SERVING once it was over: the probe asked SQLite for
its write lock while the server's own writers took it back to back, and SQLite's busy handler
polls rather than queues, so the probe lost every race for the lock and reported a database
that was committing all along as one that could not take writes. A write committed moments ago
is now the probe's answer; with none, it asks for the lock as before, so a database whose lock
is held by someone else is still reported.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.health import probe_writes
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork, current_connection

# One writer taking the lock back to back, as the batcher's single SQLite worker does, and
# holding it as long as a posting group deciding a few hundred transfers.
WRITERS = 1
HOLD_S = 0.05
PROBES = 10
PROBE_TIMEOUT_S = 0.2
WAIT_LIMIT_S = 30.0


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "ledgerd.db"


@pytest.fixture
async def engine(sqlite_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{sqlite_path}", pool_size=WRITERS)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE items (id integer PRIMARY KEY)"))
    yield engine
    await engine.dispose()


async def _write_until(stop: asyncio.Event, uow: SqlAlchemyUnitOfWork) -> int:
    written = 0
    while not stop.is_set():
        async with uow.begin() as transaction:
            await current_connection().execute(text("INSERT INTO items DEFAULT VALUES"))
            await asyncio.sleep(HOLD_S)
            await transaction.commit()
        written += 1
    return written


async def test_a_database_busy_with_writes_is_reported_writable(engine: AsyncEngine) -> None:
    uow = SqlAlchemyUnitOfWork(engine)
    stop = asyncio.Event()
    async with asyncio.timeout(WAIT_LIMIT_S):
        writers = [asyncio.create_task(_write_until(stop, uow)) for _ in range(WRITERS)]
        try:
            await asyncio.sleep(0.2)  # the writers under way
            answers = [await probe_writes(engine, PROBE_TIMEOUT_S) for _ in range(PROBES)]
        finally:
            stop.set()
            written = sum(await asyncio.gather(*writers))
    assert written > 0
    assert [answer.reason for answer in answers if not answer.writable] == []


async def test_a_lock_held_elsewhere_is_reported_once_writes_stop(
    engine: AsyncEngine, sqlite_path: Path
) -> None:
    uow = SqlAlchemyUnitOfWork(engine)
    async with uow.begin() as transaction:
        await current_connection().execute(text("INSERT INTO items DEFAULT VALUES"))
        await transaction.commit()
    assert (await probe_writes(engine, PROBE_TIMEOUT_S)).writable

    outside = sqlite3.connect(sqlite_path, isolation_level=None)
    try:
        outside.execute("BEGIN IMMEDIATE")  # another process's writer, holding the lock
        await asyncio.sleep(PROBE_TIMEOUT_S * 1.5)  # the last commit no longer recent
        answer = await probe_writes(engine, PROBE_TIMEOUT_S)
    finally:
        outside.close()
    assert not answer.writable
    assert "write lock" in answer.reason
