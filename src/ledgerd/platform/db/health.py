"""Whether the database can take writes now: what readiness and the gRPC health status report.

Answering a read is not enough: a SQLite database whose write lock is held (by another
process, or by a connection that never let go) still answers every SELECT while every posting
waits and fails. The probe therefore asks for what a posting needs first: on SQLite the write
lock (``BEGIN IMMEDIATE``, then rolled back at once), on PostgreSQL a connection to a server
that is not read-only (a standby, or a primary that was demoted).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.platform.db.engine import SQLITE_BUSY_MS_OPTION
from ledgerd.platform.db.write_activity import write_activity


@dataclass(frozen=True, slots=True)
class WriteHealth:
    writable: bool
    reason: str = ""


WRITABLE = WriteHealth(writable=True)
# The share of a probe's time it may wait for SQLite's write lock.
_LOCK_SHARE = 0.75


async def probe_writes(engine: AsyncEngine, timeout_s: float) -> WriteHealth:
    """Whether a write transaction could start within ``timeout_s``; never raises.

    A write committed through a unit of work within the last ``timeout_s`` is the answer
    already (``write_activity``): a busy database is not asked for a lock it is busy with.
    """
    if write_activity(engine).committed_within(timeout_s):
        return WRITABLE
    try:
        async with asyncio.timeout(timeout_s):
            if engine.dialect.name == "sqlite":
                return await _sqlite_write_lock(engine, timeout_s)
            return await _postgres_writable(engine)
    except TimeoutError:
        return WriteHealth(writable=False, reason=f"no answer within {timeout_s:g} s")
    except Exception as error:  # noqa: BLE001 - any failure means "cannot take writes", reported
        return WriteHealth(writable=False, reason=f"{type(error).__name__}: {error}"[:300])


async def _sqlite_write_lock(engine: AsyncEngine, timeout_s: float) -> WriteHealth:
    async with engine.connect() as connection:
        # Give up on the lock well within the probe's time, so the answer can say why; the
        # engine begins SQLite transactions IMMEDIATE, which takes the write lock.
        lock_wait_s = timeout_s * _LOCK_SHARE
        busy_ms = max(1, int(lock_wait_s * 1000))
        waiting = await connection.execution_options(**{SQLITE_BUSY_MS_OPTION: busy_ms})
        try:
            await waiting.begin()
        except Exception as error:
            if "locked" in str(error):
                return WriteHealth(
                    writable=False,
                    reason=f"the database's write lock was not free within {lock_wait_s:g} s",
                )
            raise
        await waiting.rollback()
    return WRITABLE


async def _postgres_writable(engine: AsyncEngine) -> WriteHealth:
    async with engine.connect() as connection:
        read_only = await connection.scalar(text("SELECT current_setting('transaction_read_only')"))
    if read_only == "on":
        return WriteHealth(writable=False, reason="the server is read-only (a standby?)")
    return WRITABLE
