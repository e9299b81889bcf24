from datetime import timedelta
from enum import StrEnum

import pytest

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.paging import encode_cursor
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.model import AccountFlags, Balances, Entry, Ledger, new_account
from ledgerd.ledger.domain.requests import CaptureRequest
from tests.fakes.clock import START
from tests.fakes.ledger_app import LedgerApp
from tests.unit.ledger.application.scenario import (
    LEDGER,
    USD,
    create_ledger,
    open_account,
    pay,
)


async def _error(awaitable: object) -> StrEnum:
    with pytest.raises(LedgerdError) as caught:
        await awaitable  # type: ignore[misc]
    return caught.value.code


async def test_get_ledger_and_account(app: LedgerApp) -> None:
    ledger = await app.queries.get_ledger(LEDGER)
    alice = await app.queries.get_account(LEDGER, "alice")

    assert (ledger.id, ledger.name, ledger.created_at) == (LEDGER, "ledger L", START)
    assert (alice.id, alice.flags.debits_must_not_exceed_credits) == ("alice", True)
    assert await _error(app.queries.get_ledger("nope")) is LedgerErrorCode.LEDGER_NOT_FOUND
    assert (
        await _error(app.queries.get_account("nope", "alice")) is LedgerErrorCode.LEDGER_NOT_FOUND
    )
    assert (
        await _error(app.queries.get_account(LEDGER, "nope")) is LedgerErrorCode.ACCOUNT_NOT_FOUND
    )
    assert await _error(app.queries.get_account(LEDGER, "no pe")) is ErrorCode.VALIDATION_FAILED


async def test_get_transfer(app: LedgerApp) -> None:
    posted = await app.post_transfers.post_one(LEDGER, pay("k1", ("bank", "alice", 5)))

    assert await app.queries.get_transfer(LEDGER, posted.transfer.id) == posted.transfer
    assert (
        await _error(app.queries.get_transfer(LEDGER, "t9")) is LedgerErrorCode.TRANSFER_NOT_FOUND
    )
    assert await _error(app.queries.get_transfer("nope", "t9")) is LedgerErrorCode.LEDGER_NOT_FOUND


async def test_balance_now_and_as_of_past_instants(app: LedgerApp) -> None:
    post = app.post_transfers.post_one
    t0 = app.clock.now()
    await post(LEDGER, pay("k1", ("bank", "alice", 100)))
    t1 = app.clock.advance(timedelta(minutes=1))
    hold = await post(LEDGER, pay("k2", ("alice", "bob", 30), pending=True))
    await post(LEDGER, pay("k3", ("alice", "bob", 5)))  # same instant as the hold
    t2 = app.clock.advance(timedelta(minutes=1))
    await post(LEDGER, CaptureRequest(hold.transfer.id, amount=10))
    app.clock.advance(timedelta(minutes=1))

    async def as_of(instant: object) -> tuple[Balances, int]:
        balance = await app.queries.get_balance(LEDGER, "alice", as_of=instant)  # type: ignore[arg-type]
        assert balance.as_of == instant
        return balance.balances, balance.available

    assert await as_of(t0 - timedelta(microseconds=1)) == (Balances(), 0)
    assert await as_of(t0) == (Balances(posted_credits=100), 100)
    assert await as_of(t1 - timedelta(microseconds=1)) == (Balances(posted_credits=100), 100)
    assert await as_of(t1) == (
        Balances(posted_debits=5, posted_credits=100, pending_debits=30),
        65,
    )
    assert await as_of(t2) == (Balances(posted_debits=15, posted_credits=100), 85)
    now = await app.queries.get_balance(LEDGER, "alice")
    assert (now.balances, now.available, now.as_of) == (
        Balances(posted_debits=15, posted_credits=100),
        85,
        None,
    )


async def test_balance_of_a_debit_normal_account(app: LedgerApp) -> None:
    await open_account(app, "loan", flags=AccountFlags(credits_must_not_exceed_debits=True))
    await app.post_transfers.post_one(LEDGER, pay("k1", ("loan", "bank", 70)))
    await app.post_transfers.post_one(LEDGER, pay("k2", ("bank", "loan", 20)))

    balance = await app.queries.get_balance(LEDGER, "loan")

    assert balance.available == 50


async def test_balance_as_of_needs_a_time_zone(app: LedgerApp) -> None:
    naive = START.replace(tzinfo=None)

    code = await _error(app.queries.get_balance(LEDGER, "alice", as_of=naive))

    assert code is ErrorCode.VALIDATION_FAILED


async def test_list_entries_pages_through_a_statement(app: LedgerApp) -> None:
    for index in range(7):
        await app.post_transfers.post_one(LEDGER, pay(f"k{index}", ("bank", "alice", index + 1)))
    statement: list[Entry] = []
    cursor: str | None = None
    pages = 0

    while True:
        page = await app.queries.list_entries(LEDGER, "alice", cursor=cursor, limit=3)
        pages += 1
        statement.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert pages == 3
    assert [e.account_sequence for e in statement] == [1, 2, 3, 4, 5, 6, 7]
    assert [e.amount for e in statement] == [1, 2, 3, 4, 5, 6, 7]
    assert statement[-1].balances_after.posted_credits == 28
    exact = await app.queries.list_entries(LEDGER, "alice", limit=7)
    assert exact.next_cursor is None
    assert (await app.queries.list_entries(LEDGER, "bob")).items == []


@pytest.mark.parametrize(
    ("cursor", "limit"),
    [("garbage!", None), (encode_cursor("abc"), None), (None, 0), (None, 1001)],
)
async def test_list_entries_rejects_bad_paging(
    app: LedgerApp, cursor: str | None, limit: int | None
) -> None:
    code = await _error(app.queries.list_entries(LEDGER, "alice", cursor=cursor, limit=limit))

    assert code is ErrorCode.VALIDATION_FAILED


async def test_list_entries_of_unknown_things(app: LedgerApp) -> None:
    assert (
        await _error(app.queries.list_entries(LEDGER, "nope")) is LedgerErrorCode.ACCOUNT_NOT_FOUND
    )
    assert (
        await _error(app.queries.list_entries("nope", "alice")) is LedgerErrorCode.LEDGER_NOT_FOUND
    )


async def test_list_accounts_filters_by_metadata_and_pages(app: LedgerApp) -> None:
    for index in range(7):
        team = "red" if index % 3 else "blue"
        await open_account(app, f"acct-{index}", metadata={"team": team, "n": str(index)})
    found: list[str] = []
    cursor: str | None = None

    while True:
        page = await app.queries.list_accounts(
            LEDGER, metadata={"team": "red"}, cursor=cursor, limit=2
        )
        found.extend(account.id for account in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert found == ["acct-1", "acct-2", "acct-4", "acct-5"]
    everything = await app.queries.list_accounts(LEDGER)
    assert [a.id for a in everything.items][:3] == ["acct-0", "acct-1", "acct-2"]
    assert len(everything.items) == 10
    two_keys = await app.queries.list_accounts(LEDGER, metadata={"team": "blue", "n": "3"})
    assert [a.id for a in two_keys.items] == ["acct-3"]
    none = await app.queries.list_accounts(LEDGER, metadata={"team": "green"})
    assert (none.items, none.next_cursor) == ([], None)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"cursor": "%%%"}, ErrorCode.VALIDATION_FAILED),
        ({"cursor": encode_cursor("not an id")}, ErrorCode.VALIDATION_FAILED),
        ({"limit": 0}, ErrorCode.VALIDATION_FAILED),
        ({"metadata": {"": "x"}}, ErrorCode.VALIDATION_FAILED),
    ],
)
async def test_list_accounts_rejects_bad_input(
    app: LedgerApp, kwargs: dict[str, object], code: ErrorCode
) -> None:
    assert await _error(app.queries.list_accounts(LEDGER, **kwargs)) is code  # type: ignore[arg-type]


async def test_accounts_stored_before_the_dot_rule_still_page(app: LedgerApp) -> None:
    # "." passed check_id until ids became URL-safe; stored ones are not migrated, so a page
    # may end on one and its cursor must still lead to the next page.
    async with app.uow.begin() as tx:
        await app.accounts.add(new_account(LEDGER, ".", USD, app.clock.now()))
        await tx.commit()

    first = await app.queries.list_accounts(LEDGER, limit=1)
    assert [account.id for account in first.items] == ["."]
    second = await app.queries.list_accounts(LEDGER, cursor=first.next_cursor, limit=1)
    assert [account.id for account in second.items] == ["alice"]


async def test_list_accounts_of_an_unknown_ledger(app: LedgerApp) -> None:
    assert await _error(app.queries.list_accounts("nope")) is LedgerErrorCode.LEDGER_NOT_FOUND


async def test_list_ledgers_pages_by_id(app: LedgerApp) -> None:
    for ledger_id in ("b-2", "a-1", "c-3", "B-0"):
        await create_ledger(app, ledger_id)
    found: list[str] = []
    cursor: str | None = None

    while True:
        page = await app.queries.list_ledgers(cursor=cursor, limit=2)
        found.extend(ledger.id for ledger in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert found == sorted(["b-2", "a-1", "c-3", "B-0", LEDGER])
    everything = await app.queries.list_ledgers()
    assert [ledger.id for ledger in everything.items] == found
    assert everything.next_cursor is None
    first: Ledger = everything.items[0]
    assert (first.id, first.name, first.created_at) == ("B-0", "ledger B-0", START)


async def test_ledgers_stored_before_the_dot_rule_still_page(app: LedgerApp) -> None:
    async with app.uow.begin() as tx:
        await app.ledgers.add(Ledger(".", "old", {}, app.clock.now()))
        await tx.commit()

    first = await app.queries.list_ledgers(limit=1)
    assert [ledger.id for ledger in first.items] == ["."]
    second = await app.queries.list_ledgers(cursor=first.next_cursor, limit=1)
    assert [ledger.id for ledger in second.items] == [LEDGER]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cursor": "%%%"},
        {"cursor": encode_cursor("not an id")},
        {"limit": 0},
        {"limit": 1001},
    ],
)
async def test_list_ledgers_rejects_bad_input(app: LedgerApp, kwargs: dict[str, object]) -> None:
    error = await _error(app.queries.list_ledgers(**kwargs))  # type: ignore[arg-type]
    assert error is ErrorCode.VALIDATION_FAILED


async def test_queries_never_commit(app: LedgerApp) -> None:
    commits = app.uow.commits

    await app.queries.get_ledger(LEDGER)
    await app.queries.list_ledgers()
    await app.queries.get_balance(LEDGER, "alice", as_of=START)
    await app.queries.list_accounts(LEDGER)
    await app.queries.list_entries(LEDGER, "alice")

    assert app.uow.commits == commits
