"""The webhook attempts' retention sweep: what the attempts it must keep cost it (PostgreSQL).

Two endpoints' attempts, all past the retention, interleaved in time as a day of deliveries
writes them: one endpoint delivered (its attempts go), the other was down and every event of it
is dead-lettered (its attempts are kept, whatever their age: docs/webhooks.md). The same sweep
(``AttemptRetention``, 1,000 rows a batch) runs on a fresh database with the kept attempts and,
as the baseline of the same run, without them. A sweep whose cost grows with the kept rows is
what this measures: ideally the two take about the same.

    python bench/attempt_retention.py [--deleted 200000] [--kept 160000] [--rounds 2]

Writes bench/results/attempt_retention.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from ledgerd.loadgen.pgbench import ServerAddress, drop_database, recreate_database
from ledgerd.main.migrations import MIGRATIONS
from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork
from ledgerd.webhooks.adapters.sql_attempt_records import SqlAttemptRecords
from ledgerd.webhooks.adapters.tables import webhook_attempts
from ledgerd.webhooks.application.retention import AttemptRetention, RetentionPolicy

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SERVER_URL = os.environ.get(
    "LEDGERD_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
DATABASE = "ledgerd_retention_bench"
DAYS = 30
NOW = datetime(2026, 12, 7, tzinfo=UTC)
# Every attempt is a day or two past the retention, spread over that day.
OLDEST = NOW - timedelta(days=DAYS + 2)
ATTEMPTS_PER_DEAD_EVENT = 8


class StoppedClock:
    """The sweep's clock, at the instant the data was made for."""

    def now(self) -> datetime:
        return NOW


@dataclass(frozen=True)
class Case:
    name: str
    deleted: int
    kept: int
    seconds: list[float]

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)


async def _fill(url: str, deleted: int, kept: int) -> None:
    """Two endpoints and their attempts, inserted by the database itself (generate_series)."""
    server = ServerAddress.from_url(url)
    connection = await server.connect(DATABASE)
    try:
        await connection.execute(
            """
            INSERT INTO webhook_endpoints (id, ledger, url, description, event_types, accounts,
                enabled, secret, created_at, updated_at)
            SELECT id, 'books', 'https://' || id || '.example/hook', '', '[]', '[]', true,
                'not-a-secret', $1, $1
            FROM (VALUES ('delivered'), ('down')) AS endpoints (id)
            """,
            OLDEST,
        )
        # Both endpoints' attempts over the same day, so that the kept ones sit between the
        # ones that go, as they would (a partner down while another one is served).
        await connection.execute(
            """
            INSERT INTO webhook_attempts (webhook_id, sequence, event_id, event_type, attempt,
                replay, started_at, duration_ms, status_code, error, outcome)
            SELECT 'delivered', n, 'event-' || n, 'ledgerd.v1.TransferPosted', 1, false,
                $1::timestamptz + n * ($2::float8 / $3::int) * interval '1 second',
                12, 204, NULL, 'delivered'
            FROM generate_series(1, $3) AS n
            """,
            OLDEST,
            86_400.0,
            deleted,
        )
        events = kept // ATTEMPTS_PER_DEAD_EVENT
        if events:
            await connection.execute(
                """
                INSERT INTO webhook_attempts (webhook_id, sequence, event_id, event_type,
                    attempt, replay, started_at, duration_ms, status_code, error, outcome)
                SELECT 'down', e, 'event-' || e, 'ledgerd.v1.TransferPosted', a, false,
                    $1::timestamptz + (e * ($2::float8 / $3::int) + a) * interval '1 second',
                    10000, NULL, 'timed out', CASE WHEN a = $4 THEN 'dead' ELSE 'retry' END
                FROM generate_series(1, $3) AS e, generate_series(1, $4) AS a
                """,
                OLDEST,
                86_400.0,
                events,
                ATTEMPTS_PER_DEAD_EVENT,
            )
            await connection.execute(
                """
                INSERT INTO webhook_dead_letters (webhook_id, sequence, event_id, event_type,
                    attempts, last_error, dead_at, replay_requested)
                SELECT 'down', e, 'event-' || e, 'ledgerd.v1.TransferPosted', $2, 'timed out',
                    $1, false
                FROM generate_series(1, $3) AS e
                """,
                OLDEST,
                ATTEMPTS_PER_DEAD_EVENT,
                events,
            )
        # What the dispatcher's cursor rows say: each endpoint's last attempt (wh0005).
        await connection.execute(
            """
            INSERT INTO webhook_cursors (webhook_id, position, failed_attempts, last_attempt_id)
            SELECT webhook_id, 0, 0, max(id) FROM webhook_attempts GROUP BY webhook_id
            """
        )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


async def _one_sweep(url: str, deleted: int, kept: int) -> float:
    server = ServerAddress.from_url(url)
    await recreate_database(server, DATABASE)
    database_url = make_url(url).set(database=DATABASE)
    engine = create_engine(database_url.render_as_string(hide_password=False))
    try:
        await MIGRATIONS.upgrade(engine)
        await _fill(url, deleted, kept)
        retention = AttemptRetention(
            SqlAttemptRecords(SqlAlchemyUnitOfWork(engine)),
            RetentionPolicy(days=DAYS),
            StoppedClock(),
        )
        began = time.perf_counter()
        swept = await retention.sweep()
        seconds = time.perf_counter() - began
        async with engine.connect() as connection:
            left = await connection.scalar(select(func.count()).select_from(webhook_attempts))
        # Every delivered attempt but the endpoint's last goes; every kept one stays.
        kept_rows = kept // ATTEMPTS_PER_DEAD_EVENT * ATTEMPTS_PER_DEAD_EVENT
        if swept != deleted - 1 or left != kept_rows + 1:
            msg = f"the sweep deleted {swept} and left {left}: not what the data asks"
            raise SystemExit(msg)
        return seconds
    finally:
        await engine.dispose()
        await drop_database(server, DATABASE)


async def _run(url: str, deleted: int, kept: int, rounds: int) -> list[Case]:
    cases = {
        "baseline: nothing kept": Case("baseline: nothing kept", deleted, 0, []),
        "with the kept attempts": Case("with the kept attempts", deleted, kept, []),
    }
    for round_ in range(rounds):
        for case in cases.values():  # interleaved: drift over the run touches both alike
            seconds = await _one_sweep(url, case.deleted, case.kept)
            case.seconds.append(seconds)
            print(f"round {round_ + 1}: {case.name}: {seconds:.2f} s", flush=True)
    return list(cases.values())


def _write(cases: list[Case]) -> None:
    RESULTS.mkdir(exist_ok=True)
    document = [asdict(case) | {"median_s": case.median_s} for case in cases]
    (RESULTS / "attempt_retention.json").write_text(json.dumps(document, indent=2) + "\n")
    lines = [
        "| case | attempts deleted | attempts kept | sweep, median s | per 1,000 deleted, ms |",
        "|---|---|---|---|---|",
    ]
    for case in cases:
        per_thousand_ms = case.median_s / max(case.deleted, 1) * 1_000_000
        lines.append(
            f"| {case.name} | {case.deleted:,} | {case.kept:,} | {case.median_s:.2f} "
            f"| {per_thousand_ms:.1f} |"
        )
    (RESULTS / "attempt_retention.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deleted", type=int, default=200_000)
    parser.add_argument("--kept", type=int, default=160_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    arguments = parser.parse_args()
    cases = asyncio.run(
        _run(arguments.server_url, arguments.deleted, arguments.kept, arguments.rounds)
    )
    _write(cases)


if __name__ == "__main__":
    main()
