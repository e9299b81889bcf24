"""The fakes are test infrastructure: if they lie, every application test lies with them."""

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from ledgerd.kernel.errors import ConcurrencyConflictError
from ledgerd.kernel.money import Asset
from ledgerd.kernel.paging import decode_cursor, decode_int_cursor
from ledgerd.ledger.domain.model import (
    GENESIS_HASH,
    Account,
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
from tests.fakes.clock import START, ManualClock
from tests.fakes.ids import SequentialIds
from tests.fakes.ledger_store import (
    FakeAccountRepository,
    FakeJournalRepository,
    FakeLedgerRepository,
    FakeTransferRepository,
    FakeUnitOfWork,
    IntegrityViolationError,
)

USD = Asset("USD", 2)


class Store:
    def __init__(self) -> None:
        self.uow = FakeUnitOfWork()
        self.ledgers = FakeLedgerRepository(self.uow)
        self.accounts = FakeAccountRepository(self.uow)
        self.transfers = FakeTransferRepository(self.uow)
        self.journal = FakeJournalRepository(self.uow)

    async def seed(self, *account_ids: str) -> None:
        async with self.uow.begin() as tx:
            await self.ledgers.add(Ledger("L", "", {}, START))
            for account_id in account_ids:
                await self.accounts.add(new_account("L", account_id, USD, START))
            await tx.commit()


@pytest.fixture
async def store() -> Store:
    store = Store()
    await store.seed("a", "b")
    return store


def _transfer(number: int, **changes: object) -> Transfer:
    transfer = Transfer(
        ledger_id="L",
        id=f"t{number}",
        sequence=number,
        kind=TransferKind.PENDING,
        status=TransferStatus.PENDING,
        idempotency_key=f"k{number}",
        request_hash="0" * 64,
        legs=(Leg("a", "b", 1, USD),),
        metadata={},
        created_at=START,
    )
    return dataclasses.replace(transfer, **changes)  # type: ignore[arg-type]


def _entry(account_id: str, sequence: int, at: datetime, posted_credits: int) -> Entry:
    return Entry(
        ledger_id="L",
        account_id=account_id,
        account_sequence=sequence,
        transfer_id="t1",
        transfer_sequence=1,
        leg_index=0,
        side=Side.CREDIT,
        layer=Layer.POSTED,
        amount=1,
        balances_after=Balances(posted_credits=posted_credits),
        created_at=at,
    )


# -- unit of work -------------------------------------------------------------------------


async def test_commit_keeps_the_writes(store: Store) -> None:
    commits = store.uow.commits

    async with store.uow.begin() as tx:
        await store.accounts.add(new_account("L", "c", USD, START))
        await tx.commit()

    assert store.uow.commits == commits + 1
    assert ("L", "c") in store.uow.tables.accounts


async def test_leaving_without_commit_rolls_back(store: Store) -> None:
    before = store.uow.tables.copy()

    async with store.uow.begin():
        await store.accounts.add(new_account("L", "c", USD, START))
        account = await store.accounts.get(("L", "a"))
        assert account is not None
        await store.accounts.update(
            dataclasses.replace(account, balances=Balances(posted_credits=9)), expected_version=0
        )
        assert ("L", "c") in store.uow.tables.accounts

    assert store.uow.tables == before
    assert store.uow.rollbacks == 1


async def test_an_exception_rolls_back_and_propagates(store: Store) -> None:
    before = store.uow.tables.copy()

    async def add_then_fail() -> None:
        async with store.uow.begin():
            await store.accounts.add(new_account("L", "c", USD, START))
            raise LookupError

    with pytest.raises(LookupError):
        await add_then_fail()

    assert store.uow.tables == before


async def test_units_of_work_do_not_nest(store: Store) -> None:
    async with store.uow.begin():
        with pytest.raises(RuntimeError, match="do not nest"):
            async with store.uow.begin(read_only=True):
                pass


async def test_repositories_need_a_unit_of_work(store: Store) -> None:
    with pytest.raises(RuntimeError, match="no unit of work"):
        await store.accounts.get(("L", "a"))


async def test_read_only_units_of_work_refuse_writes(store: Store) -> None:
    async with store.uow.begin(read_only=True):
        assert await store.accounts.get(("L", "a")) is not None
        with pytest.raises(RuntimeError, match="read-only"):
            await store.accounts.add(new_account("L", "c", USD, START))


async def test_no_writes_after_commit_and_no_second_commit(store: Store) -> None:
    async with store.uow.begin() as tx:
        await tx.commit()
        with pytest.raises(RuntimeError, match="after commit"):
            await store.accounts.add(new_account("L", "c", USD, START))
        with pytest.raises(RuntimeError, match="already over"):
            await tx.commit()


async def test_injected_conflicts_fail_the_commit_and_roll_back(store: Store) -> None:
    store.uow.conflicts_to_raise = 1
    before = store.uow.tables.copy()

    async def add_and_commit() -> None:
        async with store.uow.begin() as tx:
            await store.accounts.add(new_account("L", "c", USD, START))
            await tx.commit()

    with pytest.raises(ConcurrencyConflictError):
        await add_and_commit()

    assert store.uow.tables == before
    assert store.uow.conflicts_to_raise == 0


# -- constraints --------------------------------------------------------------------------


async def test_unique_keys_are_conflicts(store: Store) -> None:
    async with store.uow.begin():
        with pytest.raises(ConcurrencyConflictError):
            await store.ledgers.add(Ledger("L", "again", {}, START))
        with pytest.raises(ConcurrencyConflictError):
            await store.accounts.add(new_account("L", "a", USD, START))
        await store.transfers.add(_transfer(1))
        for duplicate in (
            _transfer(1, sequence=2, idempotency_key="other"),
            _transfer(2, sequence=1),
            _transfer(2, idempotency_key="k1"),
        ):
            with pytest.raises(ConcurrencyConflictError):
                await store.transfers.add(duplicate)
        await store.transfers.add(_transfer(2, target_id="t1"))
        with pytest.raises(ConcurrencyConflictError, match="settling t1"):
            await store.transfers.add(_transfer(3, target_id="t1"))


async def test_integrity_violations(store: Store) -> None:
    async with store.uow.begin():
        with pytest.raises(IntegrityViolationError):
            await store.accounts.add(new_account("nope", "x", USD, START))
        with pytest.raises(IntegrityViolationError):
            await store.journal.append([_entry("a", 1, START, 1)])  # no transfer t1 yet
        await store.transfers.add(_transfer(1))
        with pytest.raises(IntegrityViolationError):
            await store.journal.append([_entry("ghost", 1, START, 1)])
        with pytest.raises(IntegrityViolationError, match="balances_not_negative"):
            await store.journal.append([_entry("a", 1, START, -1)])
        with pytest.raises(IntegrityViolationError, match="64-bit"):
            await store.journal.append([_entry("a", 1, START, 2**63)])
        await store.journal.append([_entry("a", 1, START, 1)])
        with pytest.raises(ConcurrencyConflictError):
            await store.journal.append([_entry("a", 1, START, 1)])
        with pytest.raises(ValueError, match="naive"):
            await store.accounts.add(new_account("L", "c", USD, datetime(2024, 1, 1)))  # noqa: DTZ001


async def test_update_checks_the_version_and_keeps_immutable_columns(store: Store) -> None:
    async with store.uow.begin() as tx:
        account = await store.accounts.get(("L", "a"))
        assert account is not None
        changed = dataclasses.replace(
            account, balances=Balances(posted_credits=5), asset=Asset("EUR", 2), entry_count=3
        )
        await store.accounts.update(changed, expected_version=0)
        with pytest.raises(ConcurrencyConflictError):
            await store.accounts.update(changed, expected_version=0)
        with pytest.raises(ConcurrencyConflictError):
            await store.accounts.update(
                dataclasses.replace(changed, id="ghost"), expected_version=0
            )
        await tx.commit()

    stored = store.uow.tables.accounts["L", "a"]
    assert (stored.version, stored.balances.posted_credits, stored.entry_count) == (1, 5, 3)
    assert stored.asset == USD


async def test_set_status_expects_the_old_status(store: Store) -> None:
    async with store.uow.begin():
        pending = _transfer(1)
        await store.transfers.add(pending)
        await store.transfers.set_status(pending, TransferStatus.CAPTURED)
        with pytest.raises(ConcurrencyConflictError):
            await store.transfers.set_status(pending, TransferStatus.VOIDED)
        with pytest.raises(ConcurrencyConflictError):
            await store.transfers.set_status(_transfer(9), TransferStatus.VOIDED)
        stored = await store.transfers.get(("L", "t1"))
        assert stored is not None
        assert stored.status is TransferStatus.CAPTURED


async def test_save_head_detects_a_moved_head(store: Store) -> None:
    async with store.uow.begin():
        genesis = await store.ledgers.get_head("L")
        assert genesis == LedgerHead("L", 0, GENESIS_HASH)
        first = LedgerHead("L", 1, "1" * 64)
        await store.ledgers.save_head(first, previous=genesis)
        with pytest.raises(ConcurrencyConflictError):
            await store.ledgers.save_head(LedgerHead("L", 1, "2" * 64), previous=genesis)
        assert await store.ledgers.get_head("L") == first
        assert await store.ledgers.get_head("nope") is None


# -- reads --------------------------------------------------------------------------------


async def test_list_page_pages_by_id_with_a_metadata_filter() -> None:
    store = Store()
    await store.seed()
    async with store.uow.begin() as tx:
        for index in (5, 1, 4, 2, 3, 6):
            team = "red" if index % 2 else "blue"
            await store.accounts.add(
                new_account("L", f"acct-{index}", USD, START, metadata={"team": team})
            )
        await tx.commit()

    async with store.uow.begin(read_only=True):
        first = await store.accounts.list_page("L", metadata={"team": "red"}, after=None, limit=2)
        assert [a.id for a in first.items] == ["acct-1", "acct-3"]
        assert first.next_cursor is not None
        assert decode_cursor(first.next_cursor) == "acct-3"
        second = await store.accounts.list_page(
            "L", metadata={"team": "red"}, after="acct-3", limit=2
        )
        assert [a.id for a in second.items] == ["acct-5"]
        assert second.next_cursor is None
        everything = await store.accounts.list_page("L", metadata={}, after=None, limit=6)
        assert len(everything.items) == 6
        assert everything.next_cursor is None
        assert (await store.accounts.list_page("M", metadata={}, after=None, limit=5)).items == []


async def test_journal_reads(store: Store) -> None:
    later = START + timedelta(minutes=1)
    async with store.uow.begin() as tx:
        await store.transfers.add(_transfer(1))
        await store.journal.append(
            [
                _entry("b", 2, later, 2),
                _entry("b", 1, START, 1),
                _entry("a", 1, START, 1),
                _entry("b", 3, later, 3),
            ]
        )
        await tx.commit()

    async with store.uow.begin(read_only=True):
        ordered = [(e.account_id, e.account_sequence) async for e in store.journal.entries("L")]
        assert ordered == [("a", 1), ("b", 1), ("b", 2), ("b", 3)]
        page = await store.journal.page("L", "b", after=None, limit=2)
        assert [e.account_sequence for e in page.items] == [1, 2]
        assert decode_int_cursor(page.next_cursor) == 2
        rest = await store.journal.page("L", "b", after=2, limit=2)
        assert [e.account_sequence for e in rest.items] == [3]
        assert rest.next_cursor is None
        as_of = store.journal.balances_as_of
        assert await as_of("L", "b", START - timedelta(seconds=1)) == Balances()
        assert await as_of("L", "b", START) == Balances(posted_credits=1)
        assert await as_of("L", "b", later) == Balances(posted_credits=3)


async def test_chain_and_expiry_scan(store: Store) -> None:
    async with store.uow.begin() as tx:
        due_late = START + timedelta(seconds=20)
        due_early = START + timedelta(seconds=10)
        await store.transfers.add_many(
            [
                _transfer(3, expires_at=due_late),
                _transfer(1, expires_at=due_early),
                _transfer(2),
                _transfer(4, expires_at=due_early, status=TransferStatus.VOIDED),
            ]
        )
        await tx.commit()

    async with store.uow.begin(read_only=True):
        assert [t.sequence async for t in store.transfers.chain("L")] == [1, 2, 3, 4]
        scan = store.transfers.due_for_expiry
        assert await scan(START + timedelta(seconds=9), 10) == []
        assert [t.id for t in await scan(due_early, 10)] == ["t1"]
        assert [t.id for t in await scan(due_late, 10)] == ["t1", "t3"]
        assert [t.id for t in await scan(due_late, 1)] == ["t1"]
        by_key = await store.transfers.get_by_keys("L", ["k2", "k9"])
        assert list(by_key) == ["k2"]


# -- the clock and ids --------------------------------------------------------------------


def test_manual_clock() -> None:
    clock = ManualClock()

    assert clock.now() == START
    assert clock.now().tzinfo is not None
    assert clock.advance(timedelta(seconds=5)) == START + timedelta(seconds=5)
    assert clock.now() == START + timedelta(seconds=5)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="UTC"):
        ManualClock(datetime(2024, 1, 1))  # noqa: DTZ001


def test_sequential_ids() -> None:
    ids = SequentialIds("x")

    assert ids.peek() == "x000001"
    assert [ids(), ids()] == ["x000001", "x000002"]
    assert ids.issued == 2


def test_an_account_is_what_new_account_builds() -> None:
    account = new_account("L", "a", USD, START)

    assert isinstance(account, Account)
    assert account.created_at.tzinfo is UTC
