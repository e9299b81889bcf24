"""A unit of work cancelled at any point leaves the embedded database writable.

Issue 11, item 1: a cancelled or timed-out write could wedge SQLite for every later writer.
SQLAlchemy answers a cancellation that lands inside a statement by invalidating the
connection, and the driver then closes it. When the cancellation landed between a SELECT's
execution and the fetch of its rows, the statement was still open: SQLite then only *marks*
the connection closed (a "zombie") and keeps its transaction, with the write lock, until that
statement is finalized, which Python does when the garbage collector gets to the cursor. With
the collector tuned for a server (`LEDGERD_GC_FREEZE`, a high gen-0 threshold) that was minutes,
or never.

The test cancels units of work at every point of their run in turn, with the collector off (so a
zombie stays a zombie, as it did in the server), and checks after each that another connection
can take the write lock at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork, current_connection

ROWS = 200
# Cancellations per sweep, spread evenly over the time one unit of work takes uncancelled, so
# they land at every await in turn whatever the machine's speed.
SWEEP = 120
# An outside writer waits this long for the lock; a healthy database frees it at once.
LOCK_WAIT_S = 1.0
WAIT_LIMIT_S = 30.0


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "ledgerd.db"


@pytest.fixture
async def engine(sqlite_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{sqlite_path}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE items (id integer PRIMARY KEY, note text)"))
        await connection.execute(
            text("INSERT INTO items (id, note) VALUES (:id, 'seed')"),
            [{"id": -n} for n in range(1, ROWS + 1)],
        )
    yield engine
    await engine.dispose()


@contextlib.contextmanager
def _collector_off() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def _write_and_read(uow: SqlAlchemyUnitOfWork, first_id: int) -> None:
    async with uow.begin() as tx:
        connection = current_connection()
        for offset in range(5):
            await connection.execute(
                text("INSERT INTO items (id, note) VALUES (:id, 'new')"),
                {"id": first_id + offset},
            )
            # Many rows: the statement is still open between its execution and the fetch.
            await connection.execute(text("SELECT id, note FROM items"))
        await tx.commit()


async def _cancelled_after(delay_s: float, work: asyncio.Task[None]) -> None:
    await asyncio.sleep(delay_s)
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(work, WAIT_LIMIT_S)


def _outside_writer_gets_the_lock(path: Path) -> bool:
    outside = sqlite3.connect(path, timeout=LOCK_WAIT_S, isolation_level=None)
    try:
        outside.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        if "locked" not in str(error):
            raise
        return False
    else:
        outside.execute("ROLLBACK")
        return True
    finally:
        outside.close()


async def test_a_cancelled_unit_of_work_never_keeps_the_write_lock(
    engine: AsyncEngine, sqlite_path: Path
) -> None:
    uow = SqlAlchemyUnitOfWork(engine)
    started = time.perf_counter()
    await _write_and_read(uow, first_id=1)
    run_s = time.perf_counter() - started
    wedged_at: list[int] = []
    with _collector_off():
        for step in range(SWEEP):
            work = asyncio.create_task(_write_and_read(uow, first_id=(step + 1) * 10))
            await _cancelled_after(run_s * step / SWEEP, work)
            if not await asyncio.to_thread(_outside_writer_gets_the_lock, sqlite_path):
                wedged_at.append(step)
                gc.collect()  # free the zombie so the sweep can go on
    assert wedged_at == []
    # And the application's own next write goes through.
    await _write_and_read(uow, first_id=1_000_000)
    async with engine.connect() as connection:
        added = await connection.scalar(text("SELECT count(*) FROM items WHERE id >= 1000000"))
    assert added == 5
