"""One contract for the ledger's four repository ports, run against every implementation.

An implementation is plugged in through ``IMPLEMENTATIONS``: a name and a factory that yields
a ``RepositoryKit`` (the four repositories, the unit of work they take part in, and a hook
that reports when a second writer is blocked on a lock). Today that is the SQLAlchemy
adapters on SQLite and on PostgreSQL, and the in-memory fake the unit tests rely on.
"""

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import partial

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.kernel.errors import ConcurrencyConflictError
from ledgerd.kernel.metadata import EMPTY_METADATA
from ledgerd.kernel.money import MAX_AMOUNT, Asset
from ledgerd.kernel.paging import Page, decode_cursor, decode_int_cursor
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.adapters.sql_repositories import (
    SqlAccountRepository,
    SqlJournalRepository,
    SqlLedgerRepository,
    SqlTransferRepository,
)
from ledgerd.ledger.domain.model import (
    GENESIS_HASH,
    Account,
    AccountFlags,
    AccountStatus,
    Balances,
    Entry,
    Layer,
    Ledger,
    LedgerHead,
    Leg,
    Side,
    Transfer,
    TransferKind,
    TransferStatus,
    new_account,
)
from ledgerd.ledger.domain.repositories import (
    AccountRepository,
    JournalRepository,
    LedgerRepository,
    TransferRepository,
)
from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork
from tests.fakes.ledger_store import (
    FakeAccountRepository,
    FakeJournalRepository,
    FakeLedgerRepository,
    FakeTransferRepository,
    FakeUnitOfWork,
)
from tests.integration.statements import count_statements

T0 = datetime(2030, 6, 1, 12, 0, 0, 654321, tzinfo=UTC)
USD = Asset("USD", 2)
BTC = Asset("BTC", 8)
# More rows than the SQL adapters fetch per round trip when streaming, so paging is exercised.
MORE_THAN_A_CHUNK = 1_205
WAIT_LIMIT_S = 30


@dataclass(frozen=True, slots=True)
class RepositoryKit:
    uow: UnitOfWork
    ledgers: LedgerRepository
    accounts: AccountRepository
    transfers: TransferRepository
    journal: JournalRepository
    # Returns once some other unit of work is blocked waiting for a lock this one holds (or,
    # where that cannot be observed, after giving it a fair chance to get blocked).
    until_a_writer_waits: Callable[[], Awaitable[None]]
    # How many statements the implementation has sent to its database so far.
    statements: Callable[[], int]


KitFactory = Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[RepositoryKit]]


async def _until_postgres_lock_waiter(engine: AsyncEngine) -> None:
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(WAIT_LIMIT_S):
        while True:
            async with engine.connect() as connection:
                if (await connection.execute(query)).scalar_one() > 0:
                    return
            await asyncio.sleep(0.01)


async def _let_sqlite_writer_queue() -> None:
    # SQLite's waiting happens inside its busy handler, where it cannot be seen; a few loop
    # turns are plenty for the second writer to reach BEGIN IMMEDIATE. If it is late, it
    # simply starts after the commit, and the test's assertions hold all the same.
    for _ in range(10):
        await asyncio.sleep(0.01)


@asynccontextmanager
async def _sql_kit(url: str) -> AsyncIterator[RepositoryKit]:
    engine = create_engine(url)  # at the schema's head already
    try:
        statements = count_statements(engine)

        async def until_a_writer_waits() -> None:
            if engine.dialect.name == "postgresql":
                await _until_postgres_lock_waiter(engine)
            else:
                await _let_sqlite_writer_queue()

        yield RepositoryKit(
            uow=SqlAlchemyUnitOfWork(engine),
            ledgers=SqlLedgerRepository(),
            accounts=SqlAccountRepository(),
            transfers=SqlTransferRepository(),
            journal=SqlJournalRepository(),
            until_a_writer_waits=until_a_writer_waits,
            statements=lambda: statements.count,
        )
    finally:
        await engine.dispose()


@asynccontextmanager
async def _fake_kit() -> AsyncIterator[RepositoryKit]:
    uow = FakeUnitOfWork()

    async def until_a_writer_waits() -> None:
        # The fake runs one unit of work at a time: a second one waits on its lock at once.
        for _ in range(10):
            await asyncio.sleep(0)

    yield RepositoryKit(
        uow=uow,
        ledgers=FakeLedgerRepository(uow),
        accounts=FakeAccountRepository(uow),
        transfers=FakeTransferRepository(uow),
        journal=FakeJournalRepository(uow),
        until_a_writer_waits=until_a_writer_waits,
        statements=lambda: 0,  # the fake has no database to talk to
    )


IMPLEMENTATIONS: Mapping[str, KitFactory] = {
    # The in-memory fake the unit tests use must keep the same contract as the real adapters.
    "fake-in-memory": lambda _request: _fake_kit(),
    "sql-sqlite": lambda request: _sql_kit(request.getfixturevalue("migrated_sqlite_url")),
    "sql-postgresql": lambda request: _sql_kit(request.getfixturevalue("migrated_postgres_url")),
}
_MARKS = {"sql-postgresql": [pytest.mark.postgres]}


@pytest.fixture(params=[pytest.param(name, marks=_MARKS.get(name, [])) for name in IMPLEMENTATIONS])
async def kit(request: pytest.FixtureRequest) -> AsyncIterator[RepositoryKit]:
    name: str = request.param
    async with IMPLEMENTATIONS[name](request) as repositories:
        yield repositories


# --- builders --------------------------------------------------------------------------------


def _ledger(ledger_id: str = "l1", **metadata: str) -> Ledger:
    return Ledger(ledger_id, f"ledger {ledger_id}", metadata, T0)


def _account(
    account_id: str,
    ledger_id: str = "l1",
    asset: Asset = USD,
    metadata: Mapping[str, str] = EMPTY_METADATA,
) -> Account:
    return new_account(ledger_id, account_id, asset, T0, metadata=metadata)


def _transfer(  # noqa: PLR0913 - a transfer has this many independent attributes
    sequence: int,
    *,
    ledger_id: str = "l1",
    kind: TransferKind = TransferKind.POSTING,
    status: TransferStatus = TransferStatus.POSTED,
    legs: tuple[Leg, ...] = (Leg("a", "b", 100, USD),),
    expires_at: datetime | None = None,
    target_id: str | None = None,
    key: str | None = None,
) -> Transfer:
    return Transfer(
        ledger_id=ledger_id,
        id=f"{ledger_id}-t{sequence:05d}",
        sequence=sequence,
        kind=kind,
        status=status,
        idempotency_key=key or f"key-{sequence}",
        request_hash=f"{sequence:064x}",
        legs=legs,
        metadata={"n": str(sequence)},
        created_at=T0 + timedelta(seconds=sequence),
        expires_at=expires_at,
        target_id=target_id,
        prev_hash=f"{sequence - 1:064x}",
        hash=f"{sequence:064x}",
    )


def _entry(
    account_id: str, account_sequence: int, transfer: Transfer, *, credits_after: int
) -> Entry:
    return Entry(
        ledger_id=transfer.ledger_id,
        account_id=account_id,
        account_sequence=account_sequence,
        transfer_id=transfer.id,
        transfer_sequence=transfer.sequence,
        leg_index=0,
        side=Side.CREDIT,
        layer=Layer.POSTED,
        amount=1,
        balances_after=Balances(posted_credits=credits_after),
        created_at=transfer.created_at,
    )


async def _setup(
    kit: RepositoryKit,
    *,
    ledgers: tuple[Ledger, ...] = (),
    accounts: tuple[Account, ...] = (),
    transfers: tuple[Transfer, ...] = (),
    entries: tuple[Entry, ...] = (),
) -> None:
    async with kit.uow.begin() as tx:
        for ledger in ledgers:
            await kit.ledgers.add(ledger)
        for account in accounts:
            await kit.accounts.add(account)
        await kit.transfers.add_many(transfers)
        await kit.journal.append(entries)
        await tx.commit()


async def _committed(kit: RepositoryKit, work: Callable[[], Awaitable[object]]) -> None:
    """Run ``work`` in a unit of work of its own and commit it."""
    async with kit.uow.begin() as tx:
        await work()
        await tx.commit()


async def _books(kit: RepositoryKit, *account_ids: str, ledger_id: str = "l1") -> None:
    """A ledger with accounts, the minimum that transfers and entries can refer to."""
    await _setup(
        kit,
        ledgers=(_ledger(ledger_id),),
        accounts=tuple(_account(account_id, ledger_id) for account_id in account_ids),
    )


# --- ledgers ---------------------------------------------------------------------------------


async def test_ledger_add_then_get(kit: RepositoryKit) -> None:
    ledger = _ledger("l1", team="core", region="eu")
    async with kit.uow.begin(read_only=True):
        assert await kit.ledgers.get("l1") is None
    await _setup(kit, ledgers=(ledger,))
    async with kit.uow.begin(read_only=True):
        loaded = await kit.ledgers.get("l1")
        assert await kit.ledgers.get("l2") is None
    assert loaded == ledger
    assert loaded.created_at.tzinfo is not None
    assert loaded.created_at.microsecond == T0.microsecond


async def test_adding_a_taken_ledger_id_fails_and_keeps_the_original(kit: RepositoryKit) -> None:
    await _setup(kit, ledgers=(_ledger("l1", v="1"),))
    with pytest.raises(ConcurrencyConflictError):
        await _setup(kit, ledgers=(_ledger("l1", v="2"),))
    async with kit.uow.begin(read_only=True):
        assert await kit.ledgers.get("l1") == _ledger("l1", v="1")


async def test_head_starts_at_genesis_and_advances_only_from_where_it_is(
    kit: RepositoryKit,
) -> None:
    await _setup(kit, ledgers=(_ledger("l1"),))
    genesis = LedgerHead("l1", 0, GENESIS_HASH)
    first = LedgerHead("l1", 1, "a" * 64)
    async with kit.uow.begin() as tx:
        assert await kit.ledgers.get_head("l1") == genesis
        assert await kit.ledgers.get_head("l1", for_update=True) == genesis
        assert await kit.ledgers.get_head("nope") is None
        await kit.ledgers.save_head(first, previous=genesis)
        await tx.commit()

    # Stale: the head is at #1 now, not at genesis.
    stale = LedgerHead("l1", 1, "b" * 64)
    with pytest.raises(ConcurrencyConflictError):
        await _committed(kit, lambda: kit.ledgers.save_head(stale, previous=genesis))
    async with kit.uow.begin(read_only=True):
        assert await kit.ledgers.get_head("l1") == first


async def _all_ledger_pages(kit: RepositoryKit, limit: int) -> list[Page[Ledger]]:
    pages: list[Page[Ledger]] = []
    after: str | None = None
    async with kit.uow.begin(read_only=True):
        while True:
            page = await kit.ledgers.list_page(after=after, limit=limit)
            pages.append(page)
            if page.next_cursor is None:
                return pages
            after = decode_cursor(page.next_cursor)
            assert after == page.items[-1].id


async def test_ledger_list_page_pages_in_id_order(kit: RepositoryKit) -> None:
    assert await _all_ledger_pages(kit, limit=5) == [Page([], None)]
    ledgers = [_ledger(f"ledger-{number:02d}", n=str(number)) for number in range(12)]
    await _setup(kit, ledgers=tuple(reversed(ledgers)))  # inserted out of order

    pages = await _all_ledger_pages(kit, limit=5)
    assert [len(page.items) for page in pages] == [5, 5, 2]
    assert [ledger for page in pages for ledger in page.items] == ledgers
    # Exactly a page's worth: no further (empty) page is announced.
    assert [len(page.items) for page in await _all_ledger_pages(kit, limit=12)] == [12]
    async with kit.uow.begin(read_only=True):
        # After a ledger that is gone (or never was): from the next id on.
        rest = await kit.ledgers.list_page(after="ledger-09x", limit=5)
        beyond = await kit.ledgers.list_page(after="ledger-99", limit=5)
    assert [ledger.id for ledger in rest.items] == ["ledger-10", "ledger-11"]
    assert rest.next_cursor is None
    assert beyond == Page([], None)


async def test_ledger_list_page_keeps_to_the_ids_among_it_is_given(kit: RepositoryKit) -> None:
    ledgers = [_ledger(f"ledger-{number:02d}") for number in range(6)]
    await _setup(kit, ledgers=tuple(ledgers))
    granted = {"ledger-05", "ledger-01", "ledger-03", "ledger-99"}  # one that does not exist

    async with kit.uow.begin(read_only=True):
        first = await kit.ledgers.list_page(after=None, limit=2, among=granted)
        rest = await kit.ledgers.list_page(after="ledger-03", limit=2, among=granted)
        none = await kit.ledgers.list_page(after=None, limit=2, among=frozenset())
    assert [ledger.id for ledger in first.items] == ["ledger-01", "ledger-03"]
    assert first.next_cursor is not None
    assert decode_cursor(first.next_cursor) == "ledger-03"
    assert rest == Page([ledgers[5]], None)
    assert none == Page([], None)


# --- accounts --------------------------------------------------------------------------------


async def test_account_add_then_get_round_trips_every_field(kit: RepositoryKit) -> None:
    await _setup(kit, ledgers=(_ledger("l1"), _ledger("l2")))
    account = dataclasses.replace(
        _account("wallet:alice", asset=BTC, metadata={"tier": "gold"}),
        flags=AccountFlags(debits_must_not_exceed_credits=True, overdraft_limit=MAX_AMOUNT),
        status=AccountStatus.FROZEN,
        balances=Balances(MAX_AMOUNT, 2, 3, 4),
        version=7,
        entry_count=9,
    )
    await _setup(kit, accounts=(account,))
    async with kit.uow.begin(read_only=True):
        assert await kit.accounts.get(("l1", "wallet:alice")) == account
        # Account ids are scoped by ledger.
        assert await kit.accounts.get(("l2", "wallet:alice")) is None
        assert await kit.accounts.get(("l1", "wallet:bob")) is None


async def test_get_many_returns_the_accounts_that_exist(kit: RepositoryKit) -> None:
    await _books(kit, "c", "a", "b")
    for for_update in (False, True):
        async with kit.uow.begin() as tx:
            found = await kit.accounts.get_many("l1", ["b", "zz", "a"], for_update=for_update)
            assert {key: value.id for key, value in found.items()} == {"a": "a", "b": "b"}
            assert await kit.accounts.get_many("l1", [], for_update=for_update) == {}
            assert await kit.accounts.get_many("l2", ["a"], for_update=for_update) == {}
            await tx.commit()


async def test_a_locked_read_waits_for_the_lock_holders_commit(kit: RepositoryKit) -> None:
    """``for_update`` serialises read-modify-write: the second reader sees the first's write."""
    await _books(kit, "a")
    first_locked = asyncio.Event()
    release_first = asyncio.Event()
    versions_read: list[int] = []

    async def bump(gate: asyncio.Event | None) -> None:
        async with kit.uow.begin() as tx:
            account = (await kit.accounts.get_many("l1", ["a"], for_update=True))["a"]
            versions_read.append(account.version)
            if gate is not None:
                first_locked.set()
                await gate.wait()
            changed = dataclasses.replace(
                account, balances=account.balances.moved(Side.CREDIT, Layer.POSTED, 10)
            )
            await kit.accounts.update(changed, expected_version=account.version)
            await tx.commit()

    async with asyncio.timeout(WAIT_LIMIT_S):
        first = asyncio.create_task(bump(release_first))
        await first_locked.wait()
        second = asyncio.create_task(bump(None))
        await kit.until_a_writer_waits()
        assert versions_read == [0]
        release_first.set()
        await asyncio.gather(first, second)

    assert versions_read == [0, 1]
    async with kit.uow.begin(read_only=True):
        final = await kit.accounts.get(("l1", "a"))
    assert final is not None
    assert (final.version, final.balances.posted_credits) == (2, 20)


async def test_update_checks_the_version(kit: RepositoryKit) -> None:
    await _books(kit, "a")
    async with kit.uow.begin() as tx:
        loaded = await kit.accounts.get(("l1", "a"))
        assert loaded is not None
        frozen = dataclasses.replace(
            loaded,
            status=AccountStatus.FROZEN,
            metadata={"why": "audit"},
            balances=Balances(1, 2, 3, 4),
            entry_count=4,
        )
        await kit.accounts.update(frozen, expected_version=0)
        await tx.commit()
    async with kit.uow.begin(read_only=True):
        stored = await kit.accounts.get(("l1", "a"))
    assert stored == dataclasses.replace(frozen, version=1)

    emptied = dataclasses.replace(frozen, balances=Balances())
    with pytest.raises(ConcurrencyConflictError):
        await _committed(kit, lambda: kit.accounts.update(emptied, expected_version=0))
    with pytest.raises(ConcurrencyConflictError):
        await _committed(kit, lambda: kit.accounts.update(emptied, expected_version=2))
    with pytest.raises(ConcurrencyConflictError):
        await _committed(kit, lambda: kit.accounts.update(_account("nope"), expected_version=0))
    async with kit.uow.begin(read_only=True):
        assert await kit.accounts.get(("l1", "a")) == stored


def _changed(account: Account, n: int) -> Account:
    """``account`` with every column an update writes set from ``n``."""
    return dataclasses.replace(
        account,
        status=AccountStatus.FROZEN if n % 2 else AccountStatus.OPEN,
        metadata={"n": str(n), "note": 'ünïcödé "quoted" \\ back'},
        balances=Balances(n, n + 1, n + 2, n + 3),
        entry_count=n + 4,
    )


async def _stored_accounts(kit: RepositoryKit, *keys: tuple[str, str]) -> list[Account | None]:
    async with kit.uow.begin(read_only=True):
        return [await kit.accounts.get(key) for key in keys]


async def test_update_many_stores_each_account_at_its_next_version(kit: RepositoryKit) -> None:
    await _books(kit, "a", "b", "c")
    await _books(kit, "a", ledger_id="l2")
    a, b, c, a2 = await _stored_accounts(kit, ("l1", "a"), ("l1", "b"), ("l1", "c"), ("l2", "a"))
    assert a is not None
    assert b is not None
    assert a2 is not None
    await _committed(kit, lambda: kit.accounts.update(_changed(b, 1), expected_version=0))

    # Accounts at different versions, and the same id in two ledgers, in one call.
    async with kit.uow.begin() as tx:
        await kit.accounts.update_many(
            [(_changed(a, 2), 0), (_changed(b, 3), 1), (_changed(a2, 4), 0)]
        )
        await tx.commit()

    assert await _stored_accounts(kit, ("l1", "a"), ("l1", "b"), ("l1", "c"), ("l2", "a")) == [
        dataclasses.replace(_changed(a, 2), version=1),
        dataclasses.replace(_changed(b, 3), version=2),
        c,
        dataclasses.replace(_changed(a2, 4), version=1),
    ]


async def test_update_many_with_a_stale_version_stores_none_of_it(kit: RepositoryKit) -> None:
    await _books(kit, "a", "b", "c")
    await _books(kit, "a", ledger_id="l2")
    keys = (("l1", "a"), ("l1", "b"), ("l1", "c"), ("l2", "a"))
    a, b, c, a2 = stored = await _stored_accounts(kit, *keys)
    assert a is not None
    assert b is not None
    assert c is not None
    assert a2 is not None
    stale_batches = [
        # b is at version 0, not 1; the others are current.
        [(_changed(a, 1), 0), (_changed(b, 1), 1), (_changed(c, 1), 0)],
        # A stale version first, then current ones.
        [(_changed(b, 1), 7), (_changed(a, 1), 0)],
        # An account that does not exist (here: not in that ledger).
        [(_changed(a, 1), 0), (dataclasses.replace(_changed(c, 1), ledger_id="l2"), 0)],
    ]
    for changes in stale_batches:
        with pytest.raises(ConcurrencyConflictError):
            await _committed(kit, partial(kit.accounts.update_many, changes))
        assert await _stored_accounts(kit, *keys) == stored


async def test_update_many_refuses_an_account_named_twice(kit: RepositoryKit) -> None:
    await _books(kit, "a", "b")
    a, b = await _stored_accounts(kit, ("l1", "a"), ("l1", "b"))
    assert a is not None
    assert b is not None
    with pytest.raises(ValueError, match="twice"):
        await _committed(
            kit, lambda: kit.accounts.update_many([(a, 0), (b, 0), (_changed(a, 1), 0)])
        )
    assert await _stored_accounts(kit, ("l1", "a"), ("l1", "b")) == [a, b]


async def test_nothing_to_update_sends_no_statement(kit: RepositoryKit) -> None:
    await _books(kit, "a", "b")
    await _setup(kit, transfers=(_transfer(1),))
    async with kit.uow.begin() as tx:
        before = kit.statements()
        await kit.accounts.update_many([])
        await kit.transfers.set_statuses([])
        await kit.transfers.add_many([])
        await kit.journal.append([])
        assert kit.statements() == before
        await tx.commit()
    assert await _stored_accounts(kit, ("l1", "a"), ("l1", "b")) == [_account("a"), _account("b")]


async def _all_pages(
    kit: RepositoryKit, ledger_id: str, metadata: Mapping[str, str], limit: int
) -> list[Page[Account]]:
    pages: list[Page[Account]] = []
    after: str | None = None
    async with kit.uow.begin(read_only=True):
        while True:
            page = await kit.accounts.list_page(
                ledger_id, metadata=metadata, after=after, limit=limit
            )
            pages.append(page)
            if page.next_cursor is None:
                return pages
            after = decode_cursor(page.next_cursor)
            assert after == page.items[-1].id


async def test_list_page_pages_in_id_order_with_a_metadata_filter(kit: RepositoryKit) -> None:
    await _setup(kit, ledgers=(_ledger("l1"), _ledger("l2")))
    accounts = [
        _account(
            f"acct-{number:03d}",
            metadata={
                "kind": "even" if number % 2 == 0 else "odd",
                **({"vip": "yes"} if number % 5 == 0 else {}),
            },
        )
        for number in range(23)
    ]
    # Inserted out of order; and a same-named account in another ledger must not show up.
    await _setup(
        kit, accounts=(*reversed(accounts), _account("acct-000", "l2", metadata={"kind": "even"}))
    )

    everything = await _all_pages(kit, "l1", EMPTY_METADATA, limit=10)
    assert [len(page.items) for page in everything] == [10, 10, 3]
    assert [a.id for page in everything for a in page.items] == [a.id for a in accounts]
    assert [a for page in everything for a in page.items] == accounts

    evens = await _all_pages(kit, "l1", {"kind": "even"}, limit=5)
    assert [a.id for page in evens for a in page.items] == [
        f"acct-{number:03d}" for number in range(0, 23, 2)
    ]
    even_vips = await _all_pages(kit, "l1", {"kind": "even", "vip": "yes"}, limit=5)
    assert [a.id for page in even_vips for a in page.items] == ["acct-000", "acct-010", "acct-020"]
    assert await _all_pages(kit, "l1", {"kind": "neither"}, limit=5) == [Page([], None)]

    # Exactly a page's worth: no further (empty) page is announced.
    exact = await _all_pages(kit, "l1", {"vip": "yes"}, limit=5)
    assert [len(page.items) for page in exact] == [5]


# --- transfers -------------------------------------------------------------------------------


async def test_transfer_add_then_get_round_trips_every_field(kit: RepositoryKit) -> None:
    await _books(kit, "a", "b", "c")
    hold = _transfer(
        1,
        kind=TransferKind.PENDING,
        status=TransferStatus.PENDING,
        legs=(Leg("a", "b", MAX_AMOUNT, USD), Leg("b", "c", 1, BTC)),
        expires_at=T0 + timedelta(hours=1, microseconds=7),
    )
    capture = _transfer(2, kind=TransferKind.CAPTURE, target_id=hold.id, key="capture/x")
    await _setup(kit, transfers=(hold,))
    async with kit.uow.begin() as tx:
        await kit.transfers.add(capture)
        await tx.commit()
    async with kit.uow.begin(read_only=True):
        assert await kit.transfers.get(("l1", hold.id)) == hold
        assert await kit.transfers.get(("l1", capture.id)) == capture
        assert await kit.transfers.get(("l1", "nope")) is None
        assert await kit.transfers.get(("l2", hold.id)) is None
        assert await kit.transfers.get_many("l1", [capture.id, "nope", hold.id]) == {
            hold.id: hold,
            capture.id: capture,
        }
        assert await kit.transfers.get_many("l1", []) == {}


async def test_add_many_and_append_round_trip_every_row(kit: RepositoryKit) -> None:
    """Many rows in one call, with NULLs, JSON and instants varying from row to row."""
    await _books(kit, "a", "b", "c")
    transfers = [
        dataclasses.replace(
            _transfer(
                sequence,
                kind=TransferKind.PENDING if sequence % 3 else TransferKind.POSTING,
                status=TransferStatus.PENDING if sequence % 3 else TransferStatus.POSTED,
                legs=tuple(
                    Leg("a", "bc"[n % 2], sequence + n, USD) for n in range(sequence % 4 + 1)
                ),
                expires_at=T0 + timedelta(days=sequence, microseconds=sequence)
                if sequence % 3
                else None,
                target_id=f"l1-t{sequence - 1:05d}" if sequence % 5 == 0 else None,
            ),
            metadata={} if sequence % 2 else {"ünï": 'cödé "quoted" \\ {[,]}', "n": "1"},
        )
        for sequence in range(1, 42)
    ]
    entries = [
        dataclasses.replace(
            _entry(account, number, transfer, credits_after=number),
            side=Side.DEBIT if number % 2 else Side.CREDIT,
            layer=Layer.PENDING if number % 3 else Layer.POSTED,
            leg_index=number % 4,
            balances_after=Balances(number, MAX_AMOUNT, 0, number * 2),
        )
        for number, transfer in enumerate(transfers, start=1)
        for account in ("a", "c")
    ]
    await _setup(kit, transfers=tuple(transfers), entries=tuple(entries))
    async with kit.uow.begin(read_only=True):
        stored = await kit.transfers.get_many("l1", [t.id for t in transfers])
        journal = [entry async for entry in kit.journal.entries("l1")]
    assert [stored[t.id] for t in transfers] == transfers
    assert journal == sorted(entries, key=lambda e: (e.account_id, e.account_sequence))


async def test_reads_take_any_number_of_ids(kit: RepositoryKit) -> None:
    """A full batch of many-legged transfers can name more accounts than a statement has slots."""
    await _books(kit, "a", "b")
    transfer = _transfer(1)
    await _setup(kit, transfers=(transfer,))
    many = [f"x{number:06d}" for number in range(40_000)]
    async with kit.uow.begin() as tx:
        accounts = await kit.accounts.get_many("l1", [*many, "b", "a"], for_update=True)
        assert list(accounts) == ["a", "b"]
        assert await kit.transfers.get_many("l1", [*many, transfer.id]) == {transfer.id: transfer}
        keys = [*many, transfer.idempotency_key]
        assert await kit.transfers.get_by_keys("l1", keys) == {transfer.idempotency_key: transfer}
        await tx.commit()


async def test_get_by_keys_finds_transfers_by_idempotency_key(kit: RepositoryKit) -> None:
    await _books(kit, "a", "b")
    await _books(kit, "a", "b", ledger_id="l2")
    first, second = _transfer(1, key="k-1"), _transfer(2, key="void/l1-t00001")
    elsewhere = _transfer(1, ledger_id="l2", key="k-1")
    await _setup(kit, transfers=(first, second, elsewhere))
    async with kit.uow.begin(read_only=True):
        assert await kit.transfers.get_by_keys("l1", ["k-1", "k-unused", "void/l1-t00001"]) == {
            "k-1": first,
            "void/l1-t00001": second,
        }
        assert await kit.transfers.get_by_keys("l2", ["k-1"]) == {"k-1": elsewhere}
        assert await kit.transfers.get_by_keys("l1", []) == {}


async def test_set_status_moves_only_from_the_status_loaded(kit: RepositoryKit) -> None:
    await _books(kit, "a", "b")
    hold = _transfer(1, kind=TransferKind.PENDING, status=TransferStatus.PENDING)
    await _setup(kit, transfers=(hold,))
    async with kit.uow.begin() as tx:
        await kit.transfers.set_status(hold, TransferStatus.CAPTURED)
        await tx.commit()
    # A second settlement that loaded the hold while it was still pending loses.
    with pytest.raises(ConcurrencyConflictError):
        await _committed(kit, lambda: kit.transfers.set_status(hold, TransferStatus.VOIDED))
    async with kit.uow.begin(read_only=True):
        stored = await kit.transfers.get(("l1", hold.id))
    assert stored == dataclasses.replace(hold, status=TransferStatus.CAPTURED)


def _hold(sequence: int, ledger_id: str = "l1") -> Transfer:
    return _transfer(
        sequence, ledger_id=ledger_id, kind=TransferKind.PENDING, status=TransferStatus.PENDING
    )


async def _stored_transfers(kit: RepositoryKit, *transfers: Transfer) -> list[Transfer | None]:
    async with kit.uow.begin(read_only=True):
        return [await kit.transfers.get((t.ledger_id, t.id)) for t in transfers]


async def test_set_statuses_changes_each_transfer(kit: RepositoryKit) -> None:
    await _books(kit, "a", "b")
    await _books(kit, "a", "b", ledger_id="l2")
    holds = (_hold(1), _hold(2), _hold(3))
    namesake = _hold(1, ledger_id="l2")  # the same id as holds[0], in another ledger
    await _setup(kit, transfers=holds)
    await _setup(kit, transfers=(namesake,))
    async with kit.uow.begin() as tx:
        await kit.transfers.set_statuses(
            [
                (holds[2], TransferStatus.VOIDED),
                (holds[0], TransferStatus.CAPTURED),
                (namesake, TransferStatus.EXPIRED),
            ]
        )
        await tx.commit()
    assert await _stored_transfers(kit, *holds, namesake) == [
        dataclasses.replace(holds[0], status=TransferStatus.CAPTURED),
        holds[1],
        dataclasses.replace(holds[2], status=TransferStatus.VOIDED),
        dataclasses.replace(namesake, status=TransferStatus.EXPIRED),
    ]


async def test_set_statuses_from_a_stale_status_changes_none(kit: RepositoryKit) -> None:
    await _books(kit, "a", "b")
    holds = (_hold(1), _hold(2), _hold(3))
    await _setup(kit, transfers=holds)
    await _committed(kit, lambda: kit.transfers.set_status(holds[1], TransferStatus.CAPTURED))
    stored = await _stored_transfers(kit, *holds)
    stale_batches = [
        # holds[1] was captured since it was read as pending.
        [(holds[0], TransferStatus.VOIDED), (holds[1], TransferStatus.VOIDED)],
        [(holds[1], TransferStatus.VOIDED), (holds[2], TransferStatus.VOIDED)],
        # A transfer that does not exist.
        [(holds[0], TransferStatus.VOIDED), (_hold(9), TransferStatus.VOIDED)],
    ]
    for changes in stale_batches:
        with pytest.raises(ConcurrencyConflictError):
            await _committed(kit, partial(kit.transfers.set_statuses, changes))
        assert await _stored_transfers(kit, *holds) == stored


async def test_set_statuses_refuses_a_transfer_named_twice(kit: RepositoryKit) -> None:
    await _books(kit, "a", "b")
    hold = _hold(1)
    await _setup(kit, transfers=(hold,))
    with pytest.raises(ValueError, match="twice"):
        await _committed(
            kit,
            lambda: kit.transfers.set_statuses(
                [(hold, TransferStatus.CAPTURED), (hold, TransferStatus.VOIDED)]
            ),
        )
    assert await _stored_transfers(kit, hold) == [hold]


async def test_due_for_expiry_lists_lapsed_holds_across_ledgers(kit: RepositoryKit) -> None:
    await _books(kit, "a", "b")
    await _books(kit, "a", "b", ledger_id="l2")
    now = T0 + timedelta(days=1)

    def hold(sequence: int, expires_in: timedelta | None, ledger_id: str = "l1") -> Transfer:
        return _transfer(
            sequence,
            ledger_id=ledger_id,
            kind=TransferKind.PENDING,
            status=TransferStatus.PENDING,
            expires_at=None if expires_in is None else now + expires_in,
        )

    lapsed_long_ago = hold(1, -timedelta(hours=5))
    lapsed_just_now = hold(2, timedelta(0))
    lapsed_elsewhere = hold(1, -timedelta(hours=1), ledger_id="l2")
    lapsed_but_settled = hold(3, -timedelta(hours=3))
    not_yet = hold(4, timedelta(microseconds=1))
    never = hold(5, None)
    posted = _transfer(6)
    await _setup(
        kit,
        transfers=(lapsed_long_ago, lapsed_just_now, lapsed_but_settled, not_yet, never, posted),
    )
    await _setup(kit, transfers=(lapsed_elsewhere,))
    async with kit.uow.begin() as tx:
        await kit.transfers.set_status(lapsed_but_settled, TransferStatus.VOIDED)
        await tx.commit()

    async with kit.uow.begin(read_only=True):
        due = await kit.transfers.due_for_expiry(now, 100)
        first_two = await kit.transfers.due_for_expiry(now, 2)
    # Oldest deadline first, so a limited sweep clears the longest-overdue holds.
    assert [t.id for t in due] == [lapsed_long_ago.id, lapsed_elsewhere.id, lapsed_just_now.id]
    assert due[1] == lapsed_elsewhere
    assert [t.id for t in first_two] == [lapsed_long_ago.id, lapsed_elsewhere.id]


async def test_chain_streams_a_ledger_in_sequence_order(kit: RepositoryKit) -> None:
    await _books(kit, "a", "b")
    await _books(kit, "a", "b", ledger_id="l2")
    transfers = [_transfer(sequence) for sequence in range(1, MORE_THAN_A_CHUNK + 1)]
    # Stored out of order, with another ledger's records in between.
    await _setup(kit, transfers=tuple(transfers[::2]))
    await _setup(kit, transfers=tuple(_transfer(s, ledger_id="l2") for s in range(1, 4)))
    await _setup(kit, transfers=tuple(transfers[1::2]))
    async with kit.uow.begin(read_only=True):
        streamed = [transfer async for transfer in kit.transfers.chain("l1")]
        assert [t async for t in kit.transfers.chain("nope")] == []
    assert [t.sequence for t in streamed] == list(range(1, MORE_THAN_A_CHUNK + 1))
    assert streamed == transfers


# Which accounts each of ledger l1's transfers #1..#9 moved (what its entries say).
_MOVED = {1: "a", 2: "ab", 3: "b", 4: "a", 5: "b", 6: "b", 7: "a", 8: "ab", 9: "bc"}


async def _listed_books(kit: RepositoryKit) -> list[Transfer]:
    """l1 with transfers #1..#9 (created one second apart) and their entries, plus l2.

    l2 holds a transfer under the same id as l1's #3 with an entry on account ``a``, which
    l1's #3 never moved: an account filter must not match across ledgers.
    """
    await _books(kit, "a", "b", "c")
    await _books(kit, "a", "b", "c", ledger_id="l2")
    transfers = [_transfer(sequence) for sequence in _MOVED]
    counts: dict[str, int] = {}
    entries: list[Entry] = []
    for transfer in transfers:
        for account in _MOVED[transfer.sequence]:
            counts[account] = counts.get(account, 0) + 1
            entries.append(_entry(account, counts[account], transfer, credits_after=1))
    namesake = dataclasses.replace(_transfer(1, ledger_id="l2"), id=transfers[2].id)
    # Stored out of order, in two units of work.
    await _setup(kit, transfers=tuple(reversed(transfers[4:])))
    await _setup(kit, transfers=tuple(transfers[:4]), entries=tuple(entries))
    await _setup(
        kit,
        transfers=(namesake,),
        entries=(_entry("a", 1, namesake, credits_after=1),),
    )
    return transfers


async def _transfer_pages(  # noqa: PLR0913 - the filters of a transfer listing
    kit: RepositoryKit,
    limit: int,
    *,
    ledger_id: str = "l1",
    account_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    kind: TransferKind | None = None,
    status: TransferStatus | None = None,
) -> list[list[Transfer]]:
    pages: list[list[Transfer]] = []
    after: int | None = None
    async with kit.uow.begin(read_only=True):
        while True:
            page = await kit.transfers.list_page(
                ledger_id,
                account_id=account_id,
                start=start,
                end=end,
                kind=kind,
                status=status,
                after=after,
                limit=limit,
            )
            pages.append(list(page.items))
            if page.next_cursor is None:
                return pages
            after = decode_int_cursor(page.next_cursor)
            assert after == page.items[-1].sequence


def _sequences(pages: list[list[Transfer]]) -> list[list[int]]:
    return [[transfer.sequence for transfer in page] for page in pages]


async def test_transfer_list_page_pages_in_sequence_order(kit: RepositoryKit) -> None:
    transfers = await _listed_books(kit)

    by_four = await _transfer_pages(kit, 4)

    assert _sequences(by_four) == [[1, 2, 3, 4], [5, 6, 7, 8], [9]]
    assert [t for page in by_four for t in page] == transfers
    # Exactly a page's worth: no further (empty) page is announced.
    assert _sequences(await _transfer_pages(kit, 9)) == [list(range(1, 10))]
    assert _sequences(await _transfer_pages(kit, 1000)) == [list(range(1, 10))]
    assert await _transfer_pages(kit, 5, ledger_id="l2") == [
        [dataclasses.replace(_transfer(1, ledger_id="l2"), id=transfers[2].id)]
    ]
    assert await _transfer_pages(kit, 5, ledger_id="nope") == [[]]
    async with kit.uow.begin(read_only=True):
        beyond = await kit.transfers.list_page(
            "l1", account_id=None, start=None, end=None, after=9, limit=5
        )
        middle = await kit.transfers.list_page(
            "l1", account_id=None, start=None, end=None, after=6, limit=5
        )
    assert beyond == Page([], None)
    assert middle == Page(transfers[6:], None)


async def test_transfer_list_page_filters_by_account(kit: RepositoryKit) -> None:
    await _listed_books(kit)

    def moved(account: str) -> list[int]:
        return [sequence for sequence, accounts in _MOVED.items() if account in accounts]

    assert _sequences(await _transfer_pages(kit, 100, account_id="a")) == [moved("a")]
    assert _sequences(await _transfer_pages(kit, 2, account_id="a")) == [[1, 2], [4, 7], [8]]
    assert _sequences(await _transfer_pages(kit, 3, account_id="b")) == [[2, 3, 5], [6, 8, 9]]
    assert _sequences(await _transfer_pages(kit, 1, account_id="c")) == [[9]]
    assert await _transfer_pages(kit, 5, account_id="zz") == [[]]
    assert _sequences(await _transfer_pages(kit, 5, ledger_id="l2", account_id="a")) == [[1]]
    assert await _transfer_pages(kit, 5, ledger_id="l2", account_id="b") == [[]]


async def test_transfer_list_page_filters_by_creation_time(kit: RepositoryKit) -> None:
    transfers = await _listed_books(kit)
    at = {transfer.sequence: transfer.created_at for transfer in transfers}
    tiny = timedelta(microseconds=1)
    in_tokyo = timezone(timedelta(hours=9))

    async def listed(start: datetime | None = None, end: datetime | None = None) -> list[list[int]]:
        return _sequences(await _transfer_pages(kit, 100, start=start, end=end))

    # [start, end): start is included, end is not, to the microsecond.
    assert await listed(start=at[3]) == [[3, 4, 5, 6, 7, 8, 9]]
    assert await listed(start=at[3] + tiny) == [[4, 5, 6, 7, 8, 9]]
    assert await listed(end=at[5]) == [[1, 2, 3, 4]]
    assert await listed(end=at[5] + tiny) == [[1, 2, 3, 4, 5]]
    assert await listed(start=at[3], end=at[5]) == [[3, 4]]
    assert await listed(start=at[5], end=at[5]) == [[]]
    assert await listed(start=at[9] + tiny) == [[]]
    assert await listed(end=at[1]) == [[]]
    # The same instants in another time zone select the same transfers.
    assert await listed(start=at[3].astimezone(in_tokyo), end=at[5].astimezone(in_tokyo)) == [
        [3, 4]
    ]
    # Filters combine, and pages are cut after filtering.
    combined = await _transfer_pages(kit, 1, account_id="a", start=at[2], end=at[8])
    assert _sequences(combined) == [[2], [4], [7]]


async def test_transfer_list_page_filters_by_kind_and_status(kit: RepositoryKit) -> None:
    await _books(kit, "a", "b")
    await _books(kit, "a", "b", ledger_id="l2")
    hold, pending = TransferKind.PENDING, TransferStatus.PENDING
    # #1 posting, #2 and #3 holds, #4 captures #2, #5 a hold, #6 voids #5, #7 a hold.
    kinds = {1: TransferKind.POSTING, 4: TransferKind.CAPTURE, 6: TransferKind.VOID}
    transfers = [
        _transfer(
            sequence,
            kind=kinds.get(sequence, hold),
            status=TransferStatus.POSTED if sequence in kinds else pending,
        )
        for sequence in range(1, 8)
    ]
    await _setup(kit, transfers=tuple(transfers))
    await _setup(kit, transfers=(_hold(1, ledger_id="l2"),))  # an open hold elsewhere
    async with kit.uow.begin() as tx:
        await kit.transfers.set_statuses(
            [(transfers[1], TransferStatus.CAPTURED), (transfers[4], TransferStatus.VOIDED)]
        )
        await tx.commit()

    async def listed(
        limit: int = 100, kind: TransferKind | None = None, status: TransferStatus | None = None
    ) -> list[list[int]]:
        return _sequences(await _transfer_pages(kit, limit, kind=kind, status=status))

    # The open holds: the kind says what a transfer is, the status what became of it since.
    assert await listed(kind=hold, status=pending) == [[3, 7]]
    assert await listed(1, kind=hold, status=pending) == [[3], [7]]
    assert await listed(kind=hold) == [[2, 3, 5, 7]]
    assert await listed(2, kind=hold) == [[2, 3], [5, 7]]
    assert await listed(status=pending) == [[3, 7]]
    assert await listed(status=TransferStatus.CAPTURED) == [[2]]
    assert await listed(status=TransferStatus.POSTED) == [[1, 4, 6]]
    assert await listed(kind=TransferKind.VOID) == [[6]]
    assert await listed(kind=TransferKind.REVERSAL) == [[]]
    assert await listed(kind=TransferKind.POSTING, status=pending) == [[]]
    assert await listed() == [list(range(1, 8))]
    open_elsewhere = await _transfer_pages(kit, 100, ledger_id="l2", kind=hold, status=pending)
    assert open_elsewhere == [[_hold(1, ledger_id="l2")]]


async def test_transfer_list_page_combines_kind_with_account_and_time(kit: RepositoryKit) -> None:
    transfers = await _listed_books(kit)  # all postings
    at = {transfer.sequence: transfer.created_at for transfer in transfers}

    posted = await _transfer_pages(
        kit, 1, account_id="a", start=at[2], end=at[8], kind=TransferKind.POSTING
    )
    holds = await _transfer_pages(kit, 1, account_id="a", kind=TransferKind.PENDING)

    assert _sequences(posted) == [[2], [4], [7]]
    assert holds == [[]]


# --- journal ---------------------------------------------------------------------------------


async def test_journal_pages_an_account_statement_in_order(kit: RepositoryKit) -> None:
    await _books(kit, "a", "b")
    transfers = tuple(_transfer(sequence) for sequence in range(1, 8))
    entries = tuple(
        _entry(account, n, transfer, credits_after=n)
        for n, transfer in enumerate(transfers, start=1)
        for account in ("a", "b")
    )
    # Appended in two batches, the second out of order.
    await _setup(kit, transfers=transfers, entries=entries[:6])
    await _setup(kit, entries=tuple(reversed(entries[6:])))

    statement: list[Entry] = []
    after: int | None = None
    sizes: list[int] = []
    async with kit.uow.begin(read_only=True):
        while True:
            page = await kit.journal.page("l1", "a", after=after, limit=3)
            statement.extend(page.items)
            sizes.append(len(page.items))
            if page.next_cursor is None:
                break
            after = decode_int_cursor(page.next_cursor)
        assert await kit.journal.page("l1", "zz", after=None, limit=3) == Page([], None)
        assert await kit.journal.page("l1", "a", after=7, limit=3) == Page([], None)
    assert sizes == [3, 3, 1]
    assert statement == [entry for entry in entries if entry.account_id == "a"]


async def _entry_pages(
    kit: RepositoryKit,
    account_id: str,
    limit: int,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[list[int]]:
    pages: list[list[int]] = []
    after: int | None = None
    async with kit.uow.begin(read_only=True):
        while True:
            page = await kit.journal.page(
                "l1", account_id, after=after, limit=limit, start=start, end=end
            )
            pages.append([entry.account_sequence for entry in page.items])
            if page.next_cursor is None:
                return pages
            after = decode_int_cursor(page.next_cursor)
            assert after == page.items[-1].account_sequence


async def test_journal_pages_a_statement_in_a_time_range(kit: RepositoryKit) -> None:
    await _books(kit, "a", "b")
    await _books(kit, "a", ledger_id="l2")
    # Transfers #1..#6 a second apart; #3 gives account a three entries at one instant, and
    # b's entries interleave with a's (its own sequence, the same instants).
    transfers = tuple(_transfer(sequence) for sequence in range(1, 7))
    legs_on_a = {1: 1, 2: 1, 3: 3, 4: 1, 5: 1, 6: 1}
    entries: list[Entry] = []
    for transfer in transfers:
        for _ in range(legs_on_a[transfer.sequence]):
            entries.append(_entry("a", len(entries) + 1, transfer, credits_after=1))
    on_b = tuple(_entry("b", n, t, credits_after=1) for n, t in enumerate(transfers, start=1))
    # An entry of another ledger's account a, at #3's instant.
    elsewhere = _transfer(3, ledger_id="l2")
    await _setup(kit, transfers=transfers, entries=(*reversed(entries), *on_b))
    await _setup(kit, transfers=(elsewhere,), entries=(_entry("a", 1, elsewhere, credits_after=1),))
    at = {transfer.sequence: transfer.created_at for transfer in transfers}
    tiny = timedelta(microseconds=1)
    in_tokyo = timezone(timedelta(hours=9))

    async def listed(
        limit: int = 100, start: datetime | None = None, end: datetime | None = None
    ) -> list[list[int]]:
        return await _entry_pages(kit, "a", limit, start=start, end=end)

    # a's entries: 1 (#1), 2 (#2), 3, 4, 5 (#3), 6 (#4), 7 (#5), 8 (#6).
    assert await listed(start=at[3]) == [[3, 4, 5, 6, 7, 8]]
    assert await listed(start=at[3] + tiny) == [[6, 7, 8]]
    assert await listed(end=at[3]) == [[1, 2]]
    assert await listed(end=at[3] + tiny) == [[1, 2, 3, 4, 5]]
    assert await listed(start=at[2], end=at[5]) == [[2, 3, 4, 5, 6]]
    assert await listed(start=at[4], end=at[4]) == [[]]
    assert await listed(start=at[6] + tiny) == [[]]
    assert await listed(end=at[1]) == [[]]
    assert await listed(start=at[3].astimezone(in_tokyo), end=at[4].astimezone(in_tokyo)) == [
        [3, 4, 5]
    ]
    # Pages are cut after the range, and a cursor inside a range of one instant holds.
    assert await listed(2, start=at[2], end=at[5]) == [[2, 3], [4, 5], [6]]
    assert await listed(1, start=at[3], end=at[4]) == [[3], [4], [5]]
    assert await _entry_pages(kit, "b", 2, start=at[3], end=at[5]) == [[3, 4]]
    async with kit.uow.begin(read_only=True):
        after_the_range = await kit.journal.page("l1", "a", after=5, limit=5, end=at[4])
    assert after_the_range == Page([], None)


async def test_balances_as_of_an_instant(kit: RepositoryKit) -> None:
    await _books(kit, "a")
    transfers = tuple(_transfer(sequence) for sequence in (1, 2, 3))
    # Two entries at the first instant: the later one (by account sequence) wins.
    entries = (
        _entry("a", 1, transfers[0], credits_after=5),
        _entry("a", 2, transfers[0], credits_after=6),
        _entry("a", 3, transfers[1], credits_after=10),
        _entry("a", 4, transfers[2], credits_after=30),
    )
    await _setup(kit, transfers=transfers, entries=entries)
    at = [transfer.created_at for transfer in transfers]
    tiny = timedelta(microseconds=1)
    cases = {
        at[0] - tiny: Balances(),
        at[0]: Balances(posted_credits=6),
        at[1] - tiny: Balances(posted_credits=6),
        at[1]: Balances(posted_credits=10),
        at[2] + timedelta(days=365): Balances(posted_credits=30),
    }
    async with kit.uow.begin(read_only=True):
        for instant, expected in cases.items():
            assert await kit.journal.balances_as_of("l1", "a", instant) == expected, instant
        # The same instant in another time zone is the same instant.
        in_tokyo = at[1].astimezone(timezone(timedelta(hours=9)))
        assert await kit.journal.balances_as_of("l1", "a", in_tokyo) == Balances(posted_credits=10)
        assert await kit.journal.balances_as_of("l1", "zz", at[2]) == Balances()


async def test_entries_stream_by_account_then_sequence(kit: RepositoryKit) -> None:
    accounts = ("acct-a", "acct-b", "acct-c")
    await _books(kit, *accounts)
    await _books(kit, *accounts, ledger_id="l2")
    transfer = _transfer(1)
    other = _transfer(1, ledger_id="l2")
    # Account a's entries end inside the first chunk, b's straddle the chunk boundary.
    counts = {"acct-a": 400, "acct-b": 700, "acct-c": MORE_THAN_A_CHUNK - 1100}
    entries = [
        _entry(account, n, transfer, credits_after=n)
        for account, count in counts.items()
        for n in range(1, count + 1)
    ]
    await _setup(kit, transfers=(transfer,), entries=tuple(reversed(entries)))
    await _setup(kit, transfers=(other,), entries=(_entry("acct-a", 1, other, credits_after=1),))
    async with kit.uow.begin(read_only=True):
        streamed = [entry async for entry in kit.journal.entries("l1")]
    assert len(streamed) == MORE_THAN_A_CHUNK
    assert streamed == entries
