"""Delivery attempts past their retention are deleted, oldest first, in batches.

The attempts at events still dead-lettered are kept whatever their age (SQLite and PostgreSQL).
The attempts are written straight into ``webhook_attempts`` (their age is the point, and the
dispatcher writes them with the time it delivered at); the sweep is the composition root's,
reading the container's clock, which the test moves.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork
from ledgerd.webhooks.adapters.sql_attempt_records import SqlAttemptRecords
from ledgerd.webhooks.adapters.tables import webhook_attempts, webhook_dead_letters
from ledgerd.webhooks.application.retention import AttemptRetention, RetentionPolicy
from tests.integration.conftest import LedgerApp
from tests.integration.outbox.helpers import open_books
from tests.integration.webhooks.support import register, webhook_app

LEDGER = "books"
DAYS = 30
WAIT_S = 30.0  # an upper bound on a wait, not a measurement


async def _attempt(app: LedgerApp, webhook_id: str, sequence: int, started_at: datetime) -> None:
    values = {
        "webhook_id": webhook_id,
        "sequence": sequence,
        "event_id": f"event-{sequence}",
        "event_type": "ledgerd.v1.TransferPosted",
        "attempt": 1,
        "replay": False,
        "started_at": started_at,
        "duration_ms": 12,
        "status_code": 500,
        "error": None,
        "outcome": "retry",
    }
    async with app.engine.begin() as connection:
        await connection.execute(insert(webhook_attempts).values(values))


async def _dead_letter(app: LedgerApp, webhook_id: str, sequence: int, at: datetime) -> None:
    values = {
        "webhook_id": webhook_id,
        "sequence": sequence,
        "event_id": f"event-{sequence}",
        "event_type": "ledgerd.v1.TransferPosted",
        "attempts": 15,
        "last_error": "HTTP 500",
        "dead_at": at,
        "replay_requested": False,
    }
    async with app.engine.begin() as connection:
        await connection.execute(insert(webhook_dead_letters).values(values))


async def _sequences_left(app: LedgerApp) -> list[int]:
    async with app.engine.connect() as connection:
        rows = await connection.execute(
            select(webhook_attempts.c.sequence).order_by(webhook_attempts.c.sequence)
        )
    return [row.sequence for row in rows]


async def _endpoint(app: LedgerApp) -> str:
    await open_books(app, LEDGER, "bank", "alice")
    created = await register(app, LEDGER, "https://partner.example/hook")
    return created.webhook.endpoint.id


def _retention(app: LedgerApp, days: int, batch: int) -> AttemptRetention:
    return AttemptRetention(
        SqlAttemptRecords(SqlAlchemyUnitOfWork(app.engine)),
        RetentionPolicy(days=days, batch=batch),
        app.clock,
    )


async def test_old_attempts_go_in_batches_and_dead_lettered_events_keep_theirs(
    migrated_database_url: str,
) -> None:
    async with webhook_app(migrated_database_url) as app:
        hook = await _endpoint(app)
        now = app.clock.now()
        old = now - timedelta(days=DAYS, seconds=1)
        for sequence in range(1, 11):  # ten past the retention: more than three batches
            await _attempt(app, hook, sequence, old)
        await _attempt(app, hook, 11, old)  # its event is dead-lettered: kept
        await _dead_letter(app, hook, 11, old)
        await _attempt(app, hook, 12, now - timedelta(days=DAYS - 1))  # within it: kept

        deleted = await _retention(app, DAYS, batch=3).sweep()

        assert deleted == 10
        assert await _sequences_left(app) == [11, 12]


async def test_zero_days_keeps_every_attempt(migrated_database_url: str) -> None:
    async with webhook_app(migrated_database_url) as app:
        hook = await _endpoint(app)
        await _attempt(app, hook, 1, app.clock.now() - timedelta(days=3650))

        assert await _retention(app, 0, batch=3).sweep() == 0
        assert await _sequences_left(app) == [1]


async def test_the_composed_sweep_runs_at_start_with_the_settings_days(
    migrated_sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """As ``worker`` runs it: the container's sweep, once at start, then until stopped.

    Its clock is the system's, the dispatcher's, not the test's manual one: the attempts the
    dispatcher records are stamped with the time they were made.
    """
    async with webhook_app(migrated_sqlite_url, webhooks_attempts_retention_days=7) as app:
        hook = await _endpoint(app)
        now = datetime.now(UTC)  # the dispatcher stamps attempts on the system clock
        await _attempt(app, hook, 1, now - timedelta(days=8))
        await _attempt(app, hook, 2, now - timedelta(days=6))
        retention = await app.container.get(AttemptRetention)
        stop = asyncio.Event()
        with caplog.at_level(logging.INFO, logger="ledgerd.webhooks.application.retention"):
            running = asyncio.create_task(retention.run(stop))
            async with asyncio.timeout(WAIT_S):
                while await _sequences_left(app) != [2]:  # noqa: ASYNC110 - a table, no event
                    await asyncio.sleep(0.02)
            stop.set()
            async with asyncio.timeout(WAIT_S):
                await running  # the hour's wait ends at once
        assert caplog.messages == ["deleted 1 webhook attempts older than 7 days"]
