r"""Time ListTransfers with a time window on PostgreSQL: sequence bounds vs. a filtered walk.

    python bench/transfer_window.py [--transfers 1000000] [--rounds 5] \
        [--server-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

Creates (and afterwards drops) the database ``ledgerd_bench_window``, migrates it, and writes
one ledger of ``--transfers`` transfers straight into the table with ``generate_series``
(one every 10 ms, so a million span about 2.8 hours; posting them through the API would take
a quarter of an hour and measure nothing more here), then ``ANALYZE``. For one-hour windows
at the start, the middle and the end of the ledger, and for a window with no end, it reads a
page of 100 both ways:

* ``bounds``: ``SqlTransferRepository.list_page`` as ledgerd runs it (the window's first and
  last sequence read from ``ix_transfers_ledger_time``, then a range of the sequence index);
* ``walk``: the query ledgerd ran before, the time filter on a walk in sequence order
  (the plan PostgreSQL picked for it).

The two alternate round by round. Figures: the median and the fastest of the rounds, in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import make_url

from ledgerd.kernel.clock import SystemClock
from ledgerd.ledger.adapters import tables
from ledgerd.ledger.adapters.event_outbox import SqlEventOutbox
from ledgerd.ledger.adapters.sql_repositories import SqlLedgerRepository, SqlTransferRepository
from ledgerd.ledger.application.create_ledger import CreateLedger, CreateLedgerHandler
from ledgerd.loadgen.pgbench import ServerAddress, drop_database, recreate_database
from ledgerd.main.access_control import UnrecordedCreatorGrants
from ledgerd.main.migrations import MIGRATIONS
from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork, current_connection
from ledgerd.platform.outbox.writer import OutboxWriter

DEFAULT_SERVER_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DATABASE = "ledgerd_bench_window"
LEDGER = "bench"
START = datetime(2030, 1, 1, tzinfo=UTC)
SPACING = timedelta(milliseconds=10)
PAGE = 100
WINDOW = timedelta(hours=1)

# One ledger's transfers, written as the API would (the columns' shapes, not their meaning).
_FILL = """
INSERT INTO transfers (ledger_id, id, sequence, kind, status, idempotency_key, request_hash,
                       legs, metadata, created_at, expires_at, target_id, prev_hash, hash)
SELECT $1, 't' || lpad(n::text, 9, '0'), n, 'posting', 'posted', 'k' || n,
       md5(n::text) || md5(n::text), '[]', '{}',
       $2::timestamptz + n * interval '10 milliseconds', NULL, NULL,
       md5((n - 1)::text) || md5((n - 1)::text), md5(n::text) || md5(n::text)
FROM generate_series($3::bigint, $4::bigint) AS n
"""


async def _fill(server: ServerAddress, transfers: int) -> None:
    connection = await server.connect(DATABASE)
    try:
        for first in range(1, transfers + 1, 100_000):
            last = min(first + 99_999, transfers)
            await connection.execute(_FILL, LEDGER, START, first, last)
        await connection.execute(
            "UPDATE ledgers SET last_sequence = $2 WHERE id = $1", LEDGER, transfers
        )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


def _windows(transfers: int) -> dict[str, tuple[datetime, datetime | None]]:
    span = SPACING * transfers
    return {
        "1 h at the start": (START, START + WINDOW),
        "1 h in the middle": (START + span / 2, START + span / 2 + WINDOW),
        "1 h at the end": (START + span - WINDOW, START + span),
        "from the middle on": (START + span / 2, None),
    }


async def _walk(start: datetime, end: datetime | None) -> int:
    """The query as it was: the time range filtered on a walk in sequence order."""
    columns = tables.transfers.c
    query = select(tables.transfers).where(columns.ledger_id == LEDGER)
    query = query.where(columns.created_at >= start)
    if end is not None:
        query = query.where(columns.created_at < end)
    rows = await current_connection().execute(query.order_by(columns.sequence).limit(PAGE + 1))
    return len(rows.all())


async def _timed(uow: SqlAlchemyUnitOfWork, read: Callable[[], Awaitable[int]]) -> float:
    async with uow.begin(read_only=True):
        began = time.perf_counter()
        await read()
        return time.perf_counter() - began


async def _run(server_url: str, transfers: int, rounds: int) -> None:
    server = ServerAddress.from_url(server_url)
    await recreate_database(server, DATABASE)
    try:
        database = make_url(server_url).set(database=DATABASE)
        engine = create_engine(database.render_as_string(hide_password=False))
        try:
            await MIGRATIONS.upgrade(engine)
            uow = SqlAlchemyUnitOfWork(engine)
            clock = SystemClock()
            await CreateLedgerHandler(
                uow=uow,
                ledgers=SqlLedgerRepository(),
                events=SqlEventOutbox(OutboxWriter(), clock),
                clock=clock,
                creator_grants=UnrecordedCreatorGrants(),
            )(CreateLedger(LEDGER, "bench"))
            began = time.perf_counter()
            await _fill(server, transfers)
            print(f"{transfers:,} transfers written in {time.perf_counter() - began:.1f} s")
            print(f"{os.cpu_count()} CPUs, {platform.python_version()}, load {os.getloadavg()}")
            repository = SqlTransferRepository()
            for name, (start, end) in _windows(transfers).items():

                async def bounds(start: datetime = start, end: datetime | None = end) -> int:
                    page = await repository.list_page(
                        LEDGER, account_id=None, start=start, end=end, after=None, limit=PAGE
                    )
                    return len(page.items)

                async def walk(start: datetime = start, end: datetime | None = end) -> int:
                    return await _walk(start, end)

                times: dict[str, list[float]] = {"bounds": [], "walk": []}
                for round_number in range(rounds + 1):  # the first round warms the cache
                    for label, read in (("bounds", bounds), ("walk", walk)):
                        elapsed = await _timed(uow, read)
                        if round_number:
                            times[label].append(elapsed)
                cells = [
                    f"{label} median {statistics.median(ts) * 1000:8.2f} ms "
                    f"min {min(ts) * 1000:8.2f} ms"
                    for label, ts in times.items()
                ]
                print(f"{name:<20} {'   '.join(cells)}")
            print(f"load {os.getloadavg()}")
        finally:
            await engine.dispose()
    finally:
        await drop_database(server, DATABASE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--transfers", type=int, default=1_000_000, help="in the ledger")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds per window")
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL, help="a PostgreSQL server")
    arguments = parser.parse_args()
    asyncio.run(_run(arguments.server_url, arguments.transfers, arguments.rounds))


if __name__ == "__main__":
    main()
