"""Delivery attempts past their retention are deleted, oldest first, in batches.

The attempts at events still dead-lettered, and each endpoint's last attempt, are kept whatever
their age (SQLite and PostgreSQL).
The attempts are written straight into ``webhook_attempts`` (their age is the point, and the
dispatcher writes them with the time it delivered at); the sweep is the composition root's,
reading the container's clock, which the test moves.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork
from ledgerd.webhooks.adapters.sealed_secrets import WebhookSecretSealing
from ledgerd.webhooks.adapters.sql_attempt_records import SqlAttemptRecords
from ledgerd.webhooks.adapters.sql_delivery_queue import SqlDeliveryQueue
from ledgerd.webhooks.adapters.tables import (
    webhook_attempts,
    webhook_cursors,
    webhook_dead_letters,
)
from ledgerd.webhooks.application.ports import AttemptPosition, SweptBatch
from ledgerd.webhooks.application.retention import AttemptRetention, RetentionPolicy
from ledgerd.webhooks.domain.deliveries import AttemptOutcome, DeliveryAttempt
from tests.fakes.clock import ManualClock
from tests.integration.conftest import LedgerApp
from tests.integration.outbox.helpers import open_books, pay
from tests.integration.webhooks.support import dispatching, register, settled, webhook_app
from tests.webhook_receiver import receiving

LEDGER = "books"
DAYS = 30
WAIT_S = 30.0  # an upper bound on a wait, not a measurement


async def _attempt(app: LedgerApp, webhook_id: str, sequence: int, started_at: datetime) -> None:
    """An attempt's row, and its number as its endpoint's last, as the dispatcher writes them."""
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
        inserted = await connection.execute(
            insert(webhook_attempts).values(values).returning(webhook_attempts.c.id)
        )
        await connection.execute(
            update(webhook_cursors)
            .where(webhook_cursors.c.webhook_id == webhook_id)
            .values(last_attempt_id=inserted.scalar_one())
        )


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


async def _sequences_left(app: LedgerApp, webhook_id: str | None = None) -> list[int]:
    query = select(webhook_attempts.c.sequence).order_by(webhook_attempts.c.sequence)
    if webhook_id is not None:
        query = query.where(webhook_attempts.c.webhook_id == webhook_id)
    async with app.engine.connect() as connection:
        rows = await connection.execute(query)
    return [row.sequence for row in rows]


async def _endpoint(app: LedgerApp) -> str:
    await open_books(app, LEDGER, "bank", "alice")
    return await _another_endpoint(app, "https://partner.example/hook")


async def _another_endpoint(app: LedgerApp, url: str) -> str:
    created = await register(app, LEDGER, url)
    return created.webhook.endpoint.id


class StoppingAttemptRecords(SqlAttemptRecords):
    """The real records, which set ``stop`` once their first batch is done (a shutdown then)."""

    def __init__(self, engine: AsyncEngine, stop: asyncio.Event) -> None:
        super().__init__(SqlAlchemyUnitOfWork(engine))
        self._stop = stop

    async def delete_older_than(
        self, cutoff: datetime, limit: int, after: AttemptPosition | None = None
    ) -> SweptBatch:
        try:
            return await super().delete_older_than(cutoff, limit, after)
        finally:
            self._stop.set()


class RecordingAttemptRecords(SqlAttemptRecords):
    """The real records, noting where each batch was asked to start."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(SqlAlchemyUnitOfWork(engine))
        self.starts: list[AttemptPosition | None] = []
        self.batches: list[SweptBatch] = []

    async def delete_older_than(
        self, cutoff: datetime, limit: int, after: AttemptPosition | None = None
    ) -> SweptBatch:
        self.starts.append(after)
        batch = await super().delete_older_than(cutoff, limit, after)
        self.batches.append(batch)
        return batch


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

        quiet = await _another_endpoint(
            app, "https://quiet.example/hook"
        )  # nothing for a long time
        for sequence in range(1, 4):
            await _attempt(app, quiet, sequence, old - timedelta(days=300 - sequence))

        deleted = await _retention(app, DAYS, batch=3).sweep()

        assert deleted == 12
        assert await _sequences_left(app, hook) == [11, 12]
        assert await _sequences_left(app, quiet) == [3]  # its last attempt, however old
        assert await _retention(app, DAYS, batch=3).sweep() == 0  # what is kept stays kept


async def test_each_batch_starts_after_the_last_one_deleted_and_misses_none(
    migrated_database_url: str,
) -> None:
    """Kept attempts between the ones that go, and ties on the start time across batches."""
    async with webhook_app(migrated_database_url) as app:
        hook = await _endpoint(app)
        old = app.clock.now() - timedelta(days=DAYS + 2)
        for sequence in range(1, 13):
            at = old + timedelta(seconds=sequence)
            if sequence % 3 == 0:  # every third event dead-lettered: kept, between the others
                await _dead_letter(app, hook, sequence, at)
            await _attempt(app, hook, sequence, at)
        tied = old + timedelta(hours=1)
        for sequence in range(13, 18):  # five started in the same microsecond
            await _attempt(app, hook, sequence, tied)
        await _attempt(app, hook, 18, app.clock.now())  # the endpoint's last: recent
        records = RecordingAttemptRecords(app.engine)

        deleted = await AttemptRetention(
            records, RetentionPolicy(days=DAYS, batch=3), app.clock
        ).sweep()

        assert deleted == 8 + 5
        assert await _sequences_left(app) == [3, 6, 9, 12, 18]
        # Each old attempt read once, the kept ones too: 17 in batches of 3.
        assert [batch.read for batch in records.batches] == [3, 3, 3, 3, 3, 2]
        assert [batch.deleted for batch in records.batches] == [2, 2, 2, 2, 3, 2]
        # Every batch but the first starts where the one before stopped, ties included.
        assert records.starts == [None, *(batch.last for batch in records.batches[:-1])]
        assert records.batches[4].last is not None
        assert records.batches[4].last.started_at == tied  # the batch that stopped in the tie


async def test_the_dispatcher_marks_the_last_attempt_the_sweep_keeps(
    migrated_database_url: str,
) -> None:
    """Real deliveries, then made old: the sweep keeps the one the dispatcher recorded last."""
    async with webhook_app(migrated_database_url) as app, receiving() as receiver:
        await open_books(app, LEDGER, "bank", "alice")
        hook = (await register(app, LEDGER, receiver.url("/hook"))).webhook.endpoint.id
        async with dispatching(app):
            for number in range(3):
                await app.post.post_one(LEDGER, pay(f"p{number}", "bank", "alice", 100))
            await settled(app, LEDGER, hook, 3)
        async with app.engine.begin() as connection:
            ids = list(
                await connection.scalars(
                    select(webhook_attempts.c.id).order_by(webhook_attempts.c.id)
                )
            )
            await connection.execute(
                update(webhook_attempts).values(
                    started_at=app.clock.now() - timedelta(days=DAYS + 1)
                )
            )

        assert await _retention(app, DAYS, batch=2).sweep() == len(ids) - 1
        async with app.engine.connect() as connection:
            left = list(await connection.scalars(select(webhook_attempts.c.id)))
        assert left == [ids[-1]]


async def _last_attempt_of(app: LedgerApp, webhook_id: str) -> int | None:
    async with app.engine.connect() as connection:
        last: int | None = await connection.scalar(
            select(webhook_cursors.c.last_attempt_id).where(
                webhook_cursors.c.webhook_id == webhook_id
            )
        )
    return last


async def test_an_interrupted_attempt_marks_the_last_unless_another_dispatcher_holds_it(
    migrated_postgres_url: str,
) -> None:
    """Recorded after its claim ended, it does not wait for a claim another dispatcher holds."""
    async with webhook_app(migrated_postgres_url) as app:
        hook = await _endpoint(app)
        queue = SqlDeliveryQueue(
            SqlAlchemyUnitOfWork(app.engine), sealing=await app.container.get(WebhookSecretSealing)
        )

        def interrupted(sequence: int) -> DeliveryAttempt:
            return DeliveryAttempt(
                webhook_id=hook,
                sequence=sequence,
                event_id=f"event-{sequence}",
                event_type="ledgerd.v1.TransferPosted",
                attempt=1,
                replay=False,
                started_at=app.clock.now(),
                duration_ms=5,
                status_code=None,
                error="cut short by a shutdown",
                outcome=AttemptOutcome.INTERRUPTED,
            )

        await queue.record_interrupted(interrupted(1))
        first = await _last_attempt_of(app, hook)
        assert first is not None  # nobody held the endpoint: marked

        async with app.engine.connect() as holder:  # another dispatcher's claim, in flight
            await holder.execute(
                select(webhook_cursors.c.webhook_id)
                .where(webhook_cursors.c.webhook_id == hook)
                .with_for_update()
            )
            async with asyncio.timeout(WAIT_S):  # would wait as long as the claim without SKIP
                await queue.record_interrupted(interrupted(2))
            await holder.rollback()

        assert await _sequences_left(app, hook) == [1, 2]  # recorded all the same
        assert await _last_attempt_of(app, hook) == first  # the holder's own attempt will be


async def test_a_replayed_dead_letter_lets_its_attempts_go(migrated_database_url: str) -> None:
    async with webhook_app(migrated_database_url) as app:
        hook = await _endpoint(app)
        old = app.clock.now() - timedelta(days=DAYS + 5)
        await _attempt(app, hook, 1, old)
        await _dead_letter(app, hook, 1, old)
        await _attempt(app, hook, 2, old)  # the endpoint's last
        retention = _retention(app, DAYS, batch=3)
        assert await retention.sweep() == 0

        async with app.engine.begin() as connection:  # as a replay that delivered it does
            await connection.execute(delete(webhook_dead_letters))

        assert await retention.sweep() == 1
        assert await _sequences_left(app) == [2]


async def test_stopping_ends_the_sweep_between_two_batches(migrated_database_url: str) -> None:
    async with webhook_app(migrated_database_url) as app:
        hook = await _endpoint(app)
        old = app.clock.now() - timedelta(days=DAYS + 1)
        for sequence in range(1, 9):
            await _attempt(app, hook, sequence, old + timedelta(seconds=sequence))
        stop = asyncio.Event()
        retention = AttemptRetention(
            StoppingAttemptRecords(app.engine, stop), RetentionPolicy(days=DAYS, batch=3), app.clock
        )

        assert await retention.sweep(stop) == 3  # the first batch, the oldest three
        assert await _sequences_left(app) == [4, 5, 6, 7, 8]
        async with asyncio.timeout(WAIT_S):
            await retention.run(stop)  # stopped already: returns without sweeping
        assert await _sequences_left(app) == [4, 5, 6, 7, 8]


async def test_a_failing_sweep_is_a_warning_of_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A database without the tables (the driver's own error, several lines): one warning."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'unmigrated.db'}")
    stop = asyncio.Event()
    try:
        retention = AttemptRetention(
            StoppingAttemptRecords(engine, stop), RetentionPolicy(days=DAYS), ManualClock()
        )
        with caplog.at_level(logging.INFO, logger="ledgerd.webhooks.application.retention"):
            async with asyncio.timeout(WAIT_S):
                await retention.run(stop)  # the failed sweep stops it: run returns
    finally:
        await engine.dispose()
    assert len(caplog.records) == 1
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "\n" not in record.getMessage()
    assert "no such table: webhook_attempts" in record.getMessage()


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
