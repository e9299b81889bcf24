"""The real application, wired by the real composition root, on a migrated database.

Only the clock is replaced (through a dishka override, the way the composition root intends),
so tests decide what "now" is instead of sleeping.
"""

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from dishka import AsyncContainer, Provider, Scope, provide
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.adapters import tables
from ledgerd.ledger.application.change_account_status import ChangeAccountStatusHandler
from ledgerd.ledger.application.create_ledger import CreateLedgerHandler
from ledgerd.ledger.application.expire_pending import ExpirePendingHandler
from ledgerd.ledger.application.open_account import OpenAccountHandler
from ledgerd.ledger.application.post_transfers import PostTransfersHandler
from ledgerd.ledger.application.queries import LedgerQueries
from ledgerd.ledger.application.update_account_metadata import UpdateAccountMetadataHandler
from ledgerd.ledger.application.verify_ledger import VerifyLedgerHandler
from ledgerd.main.container import build_container
from ledgerd.main.migrations import MIGRATIONS
from ledgerd.main.settings import Settings
from ledgerd.platform.outbox import tables as outbox_tables
from tests.fakes.clock import ManualClock

# A fixed, unremarkable starting instant with a non-zero microsecond part, so any loss of
# precision on the way through a database shows up.
EPOCH = datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


class ClockOverride(Provider):
    """Replaces the container's system clock; later providers win in ``build_container``."""

    scope = Scope.APP

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock

    @provide(override=True)
    def clock(self) -> Clock:
        return self._clock


@dataclass(frozen=True, slots=True)
class LedgerApp:
    """Everything a test drives, resolved from one container."""

    container: AsyncContainer
    engine: AsyncEngine
    uow: UnitOfWork
    clock: ManualClock
    create_ledger: CreateLedgerHandler
    open_account: OpenAccountHandler
    change_status: ChangeAccountStatusHandler
    update_metadata: UpdateAccountMetadataHandler
    post: PostTransfersHandler
    expire: ExpirePendingHandler
    queries: LedgerQueries
    verify: VerifyLedgerHandler

    @property
    def backend(self) -> str:
        return self.engine.dialect.name


@asynccontextmanager
async def open_ledger_app(  # noqa: PLR0913 - keyword-only options, each with a default
    url: str,
    *,
    pool_size: int = 10,
    clock: ManualClock | None = None,
    migrate: bool = True,
    settings: Mapping[str, Any] | None = None,
    overrides: Sequence[Provider] = (),
) -> AsyncIterator[LedgerApp]:
    """Build the container for ``url`` (migrated to head unless told not to) and close it after.

    ``settings`` are further Settings fields (e.g. the batcher's) for the container;
    ``overrides`` further registrations replaced, as the clock is. Authentication is off unless
    ``settings`` say ``auth="required"``: these apps serve tests of the ledger's behaviour, and
    tests/security proves the checks on every RPC.
    """
    clock = clock or ManualClock(EPOCH)
    container = build_container(
        Settings(
            database_url=url, database_pool_size=pool_size, **{"auth": "off", **(settings or {})}
        ),
        ClockOverride(clock),
        *overrides,
    )
    try:
        # The override must have replaced the system clock everywhere, or no test controls time.
        assert await container.get(Clock) is clock
        engine = await container.get(AsyncEngine)
        if migrate:
            await MIGRATIONS.upgrade(engine)
        yield LedgerApp(
            container=container,
            engine=engine,
            uow=await container.get(UnitOfWork),
            clock=clock,
            create_ledger=await container.get(CreateLedgerHandler),
            open_account=await container.get(OpenAccountHandler),
            change_status=await container.get(ChangeAccountStatusHandler),
            update_metadata=await container.get(UpdateAccountMetadataHandler),
            post=await container.get(PostTransfersHandler),
            expire=await container.get(ExpirePendingHandler),
            queries=await container.get(LedgerQueries),
            verify=await container.get(VerifyLedgerHandler),
        )
    finally:
        await container.close()


TableDump = dict[str, list[tuple[object, ...]]]


async def dump_tables(engine: AsyncEngine) -> TableDump:
    """Every row of every ledger and outbox table, sorted: equal dumps mean equal databases."""
    dump: TableDump = {}
    async with engine.connect() as connection:
        for table in (
            tables.ledgers,
            tables.accounts,
            tables.transfers,
            tables.entries,
            outbox_tables.outbox_streams,
            outbox_tables.outbox_events,
            outbox_tables.outbox_cursors,
        ):
            rows = (await connection.execute(select(table))).all()
            dump[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return dump


@pytest.fixture
async def ledger_app(migrated_database_url: str) -> AsyncIterator[LedgerApp]:
    """The application on a freshly migrated database, once per backend."""
    async with open_ledger_app(migrated_database_url) as app:
        yield app
