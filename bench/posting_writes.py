r"""Time the writes of one posting unit of work on PostgreSQL: per-row statements vs. batched.

    python bench/posting_writes.py [--transfers 100,1000,10000] [--rounds 5] \
        [--server-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

Creates (and afterwards drops) the database ``ledgerd_bench_writes``. Each round decides a
batch with the real ``PostingSession`` (a quarter of it captures and voids of earlier holds,
the rest postings between random accounts), then writes it in one transaction either

* ``per-row``, as ledgerd did before its writes were batched: each insert one executemany
  (which asyncpg runs as a pipeline of single-row INSERTs), then an UPDATE per changed account
  and per settled hold; or
* ``batched``, through the repositories: one statement per kind of write, whatever the size;

and reports the time from the first write to the end of the commit, and the statements sent.
The two alternate round by round, so they meet the same table sizes and machine load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import time
from collections.abc import Sized
from dataclasses import dataclass

import asyncpg
from sqlalchemy import event, insert, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.kernel.clock import SystemClock
from ledgerd.kernel.ids import random_id
from ledgerd.kernel.money import Asset
from ledgerd.kernel.result import Ok
from ledgerd.ledger.adapters import tables
from ledgerd.ledger.adapters.event_outbox import SqlEventOutbox
from ledgerd.ledger.adapters.sql_repositories import (
    SqlAccountRepository,
    SqlJournalRepository,
    SqlLedgerRepository,
    SqlTransferRepository,
)
from ledgerd.ledger.application.create_ledger import CreateLedger, CreateLedgerHandler
from ledgerd.ledger.application.open_account import OpenAccount, OpenAccountHandler
from ledgerd.ledger.application.post_transfers import PostTransfers, PostTransfersHandler
from ledgerd.ledger.domain.model import LedgerHead, Transfer
from ledgerd.ledger.domain.posting import PostingSession, PostingSnapshot
from ledgerd.ledger.domain.requests import (
    CaptureRequest,
    LegRequest,
    PostingRequest,
    TransferRequest,
    VoidRequest,
    target_of,
)
from ledgerd.main.access_control import UnrecordedCreatorGrants
from ledgerd.main.migrations import MIGRATIONS
from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork, current_connection
from ledgerd.platform.outbox.writer import OutboxWriter

DEFAULT_SERVER_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DATABASE = "ledgerd_bench_writes"
LEDGER = "bench"
USD = Asset("USD", 2)
ACCOUNTS = 1_000
# Transfers posted before measuring, so that the tables, their statistics and the plans of
# the foreign-key checks are those of a ledger in use rather than of a fresh migration.
WARM_UP_TRANSFERS = 20_000
SETUP_BATCH = 1_000
STRATEGIES = ("per-row", "batched")


@dataclass
class _Decided:
    session: PostingSession
    head: LedgerHead


class Bench:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.uow = SqlAlchemyUnitOfWork(engine)
        self.ledgers = SqlLedgerRepository()
        self.accounts = SqlAccountRepository()
        self.transfers = SqlTransferRepository()
        self.journal = SqlJournalRepository()
        self.clock = SystemClock()
        self.events = SqlEventOutbox(OutboxWriter(), self.clock)
        self.post = PostTransfersHandler(
            uow=self.uow,
            ledgers=self.ledgers,
            accounts=self.accounts,
            transfers=self.transfers,
            journal=self.journal,
            events=self.events,
            clock=self.clock,
            new_id=random_id,
        )
        self.random = random.Random(7)  # noqa: S311 - a reproducible workload, not a secret
        self.statements = 0

        @event.listens_for(engine.sync_engine, "before_cursor_execute", named=True)
        def _count(**arguments: object) -> None:
            # An executemany is executed once per parameter set by the server.
            parameters = arguments["parameters"]
            if arguments["executemany"] and isinstance(parameters, Sized):
                self.statements += len(parameters)
            else:
                self.statements += 1

    def _account(self) -> str:
        return f"acct-{self.random.randrange(ACCOUNTS):05d}"

    def _payment(self, *, pending: bool = False) -> TransferRequest:
        debit, credit = self._account(), self._account()
        while credit == debit:
            credit = self._account()
        leg = LegRequest(debit, credit, self.random.randint(1, 100))
        return TransferRequest(random_id(), (leg,), pending=pending)

    async def _post(self, requests: list[PostingRequest]) -> list[Transfer]:
        outcome = await self.post(PostTransfers(LEDGER, requests))
        return [result.value.transfer for result in outcome if isinstance(result, Ok)]

    async def setup(self) -> None:
        await CreateLedgerHandler(
            uow=self.uow,
            ledgers=self.ledgers,
            events=self.events,
            clock=self.clock,
            creator_grants=UnrecordedCreatorGrants(),
        )(CreateLedger(LEDGER, "bench"))
        open_account = OpenAccountHandler(
            self.uow, self.ledgers, self.accounts, self.events, self.clock
        )
        for number in range(ACCOUNTS):
            await open_account(OpenAccount(LEDGER, f"acct-{number:05d}", USD))
        for _ in range(WARM_UP_TRANSFERS // SETUP_BATCH):
            await self._post([self._payment() for _ in range(SETUP_BATCH)])
        async with self.engine.connect() as connection:
            await connection.exec_driver_sql("ANALYZE")
            await connection.commit()
        # Fresh connections, which plan with the statistics just gathered.
        await self.engine.dispose()

    async def round(self, size: int, strategy: str) -> tuple[float, int]:
        """Decide a batch of ``size`` and write it ``strategy``'s way: (seconds, statements)."""
        holds: list[Transfer] = []
        for start in range(0, size // 4, SETUP_BATCH):
            count = min(SETUP_BATCH, size // 4 - start)
            holds += await self._post([self._payment(pending=True) for _ in range(count)])
        requests: list[PostingRequest] = [
            CaptureRequest(hold.id) if n % 2 else VoidRequest(hold.id)
            for n, hold in enumerate(holds)
        ]
        requests += [self._payment() for _ in range(size - len(requests))]
        async with self.uow.begin() as tx:
            decided = await self._decide(requests)
            statements = self.statements
            started = time.perf_counter()
            if strategy == "per-row":
                await _write_per_row(decided.session)
            else:
                await self._write_batched(decided.session)
            await self.ledgers.save_head(decided.session.head, previous=decided.head)
            await tx.commit()
            return time.perf_counter() - started, self.statements - statements

    async def _decide(self, requests: list[PostingRequest]) -> _Decided:
        """Load, lock and decide like the posting handler does."""
        targets = await self.transfers.get_many(
            LEDGER, {t for request in requests if (t := target_of(request)) is not None}
        )
        legs = [
            (leg.debit_account, leg.credit_account)
            for transfer in targets.values()
            for leg in transfer.legs
        ]
        legs += [
            (leg.debit_account, leg.credit_account)
            for request in requests
            if isinstance(request, TransferRequest)
            for leg in request.legs
        ]
        account_ids = {account for pair in legs for account in pair}
        accounts = await self.accounts.get_many(LEDGER, account_ids, for_update=True)
        head = await self.ledgers.get_head(LEDGER, for_update=True)
        if head is None:
            msg = "the ledger is gone"
            raise RuntimeError(msg)
        session = PostingSession(
            PostingSnapshot(head=head, accounts=accounts, transfers=targets),
            now=self.clock.now(),
            new_id=random_id,
        )
        for request in requests:
            session.post(request)
        return _Decided(session, head)

    async def _write_batched(self, session: PostingSession) -> None:
        await self.transfers.add_many(session.new_transfers)
        await self.journal.append(session.entries)
        await self.accounts.update_many(session.changed_accounts())
        await self.transfers.set_statuses(session.status_changes())


async def _write_per_row(session: PostingSession) -> None:
    """The writes as the adapter made them before they were batched."""
    connection = current_connection()
    transfer_rows = [
        {
            "ledger_id": t.ledger_id,
            "id": t.id,
            "sequence": t.sequence,
            "kind": t.kind.value,
            "status": t.status.value,
            "idempotency_key": t.idempotency_key,
            "request_hash": t.request_hash,
            "legs": [
                [leg.debit_account, leg.credit_account, leg.amount, leg.asset.code, leg.asset.scale]
                for leg in t.legs
            ],
            "metadata": dict(t.metadata),
            "created_at": t.created_at,
            "expires_at": t.expires_at,
            "target_id": t.target_id,
            "prev_hash": t.prev_hash,
            "hash": t.hash,
        }
        for t in session.new_transfers
    ]
    await connection.execute(insert(tables.transfers), transfer_rows)
    entry_rows = [
        {
            "ledger_id": e.ledger_id,
            "account_id": e.account_id,
            "account_sequence": e.account_sequence,
            "transfer_id": e.transfer_id,
            "transfer_sequence": e.transfer_sequence,
            "leg_index": e.leg_index,
            "side": e.side.value,
            "layer": e.layer.value,
            "amount": e.amount,
            "posted_debits_after": e.balances_after.posted_debits,
            "posted_credits_after": e.balances_after.posted_credits,
            "pending_debits_after": e.balances_after.pending_debits,
            "pending_credits_after": e.balances_after.pending_credits,
            "created_at": e.created_at,
        }
        for e in session.entries
    ]
    await connection.execute(insert(tables.entries), entry_rows)
    accounts = tables.accounts.c
    for account, version in session.changed_accounts():
        await connection.execute(
            update(tables.accounts)
            .where(
                accounts.ledger_id == account.ledger_id,
                accounts.id == account.id,
                accounts.version == version,
            )
            .values(
                version=version + 1,
                status=account.status.value,
                metadata=dict(account.metadata),
                posted_debits=account.balances.posted_debits,
                posted_credits=account.balances.posted_credits,
                pending_debits=account.balances.pending_debits,
                pending_credits=account.balances.pending_credits,
                entry_count=account.entry_count,
            )
        )
    transfers = tables.transfers.c
    for transfer, status in session.status_changes():
        await connection.execute(
            update(tables.transfers)
            .where(
                transfers.ledger_id == transfer.ledger_id,
                transfers.id == transfer.id,
                transfers.status == transfer.status.value,
            )
            .values(status=status.value)
        )


def _libpq(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _run(server: URL, sizes: list[int], rounds: int) -> None:
    admin = await asyncpg.connect(_libpq(server))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DATABASE}" TEMPLATE template0')
        engine = create_engine(server.set(database=DATABASE).render_as_string(hide_password=False))
        try:
            await MIGRATIONS.upgrade(engine)
            bench = Bench(engine)
            print(f"setup: {ACCOUNTS} accounts, {WARM_UP_TRANSFERS} transfers posted ...")
            await bench.setup()
            print(f"{os.cpu_count()} CPUs, {platform.python_version()}, load {os.getloadavg()}")
            for size in sizes:
                await _measure(bench, size, rounds)
            print(f"load {os.getloadavg()}")
        finally:
            await engine.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.close()


async def _measure(bench: Bench, size: int, rounds: int) -> None:
    seconds: dict[str, list[float]] = {strategy: [] for strategy in STRATEGIES}
    statements: dict[str, int] = {}
    # One round of each first, unmeasured: plans and caches for this size.
    for round_number in range(rounds + 1):
        for strategy in STRATEGIES:
            elapsed, sent = await bench.round(size, strategy)
            if round_number:
                seconds[strategy].append(elapsed)
                statements[strategy] = sent
    for strategy in STRATEGIES:
        times = sorted(seconds[strategy])
        print(
            f"{size:>6} transfers  {strategy:<8} {statements[strategy]:>6} statements  "
            f"median {statistics.median(times) * 1000:8.1f} ms  min {times[0] * 1000:8.1f} ms  "
            f"all {' '.join(f'{t * 1000:.0f}' for t in times)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--transfers", default="1000", help="batch sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds per size")
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL, help="a PostgreSQL server")
    arguments = parser.parse_args()
    sizes = [int(size) for size in arguments.transfers.split(",")]
    asyncio.run(_run(make_url(arguments.server_url), sizes, arguments.rounds))


if __name__ == "__main__":
    main()
