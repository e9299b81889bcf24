"""BatchGetBalances (``GetBalancesQuery``): many balances, in order, all or none."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.ledger.application.queries.balances import AccountBalance
from ledgerd.ledger.application.queries.get_balances import MAX_BALANCES_PER_BATCH
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.model import Balances
from tests.fakes.clock import START
from tests.fakes.ledger_app import LedgerApp
from tests.unit.ledger.application.scenario import LEDGER, pay


async def _refused(app: LedgerApp, ledger: str, ids: list[str]) -> LedgerdError:
    with pytest.raises(LedgerdError) as caught:
        await app.queries.get_balances(ledger, ids)
    return caught.value


def _shown(found: list[AccountBalance]) -> list[tuple[str, Balances, int]]:
    return [(one.account.id, one.balances, one.available) for one in found]


async def test_answers_each_id_in_the_order_asked_duplicates_included(app: LedgerApp) -> None:
    await app.post_transfers.post_one(LEDGER, pay("k1", ("bank", "alice", 100)))
    await app.post_transfers.post_one(LEDGER, pay("k2", ("alice", "bob", 30)))

    found = await app.queries.get_balances(LEDGER, ["bob", "alice", "bank", "bob"])

    assert _shown(found) == [
        ("bob", Balances(posted_credits=30), 30),
        ("alice", Balances(posted_debits=30, posted_credits=100), 70),
        ("bank", Balances(posted_debits=100), -100),
        ("bob", Balances(posted_credits=30), 30),
    ]
    assert all(one.as_of is None for one in found)


async def test_as_of_answers_as_get_balance_does(app: LedgerApp) -> None:
    await app.post_transfers.post_one(LEDGER, pay("k1", ("bank", "alice", 100)))
    before = app.clock.advance(timedelta(minutes=1))
    app.clock.advance(timedelta(minutes=1))
    await app.post_transfers.post_one(LEDGER, pay("k2", ("alice", "bob", 30)))

    found = await app.queries.get_balances(LEDGER, ["alice", "bob"], as_of=before)
    singles = [await app.queries.get_balance(LEDGER, one, as_of=before) for one in ("alice", "bob")]

    assert found == singles
    assert _shown(found) == [
        ("alice", Balances(posted_credits=100), 100),
        ("bob", Balances(), 0),
    ]
    assert {one.as_of for one in found} == {before}


async def test_one_unknown_account_fails_the_call_naming_the_first(app: LedgerApp) -> None:
    error = await _refused(app, LEDGER, ["alice", "ghost", "bob", "phantom"])

    assert (error.code, dict(error.details)) == (
        LedgerErrorCode.ACCOUNT_NOT_FOUND,
        {"account": "ghost"},
    )


async def test_an_unknown_ledger(app: LedgerApp) -> None:
    error = await _refused(app, "nope", ["alice"])

    assert error.code is LedgerErrorCode.LEDGER_NOT_FOUND


@pytest.mark.parametrize(
    ("ids", "field"),
    [
        ([], "accounts"),
        ([f"a{n}" for n in range(MAX_BALANCES_PER_BATCH + 1)], "accounts"),
        (["alice", "no pe"], "accounts[1]"),
        (["."], "accounts[0]"),
    ],
)
async def test_malformed_lists_are_refused(app: LedgerApp, ids: list[str], field: str) -> None:
    error = await _refused(app, LEDGER, ids)

    assert (error.code, error.details["field"]) == (ErrorCode.VALIDATION_FAILED, field)


async def test_as_many_as_the_limit_in_one_read_only_unit_of_work(app: LedgerApp) -> None:
    transactions, commits = app.uow.transactions, app.uow.commits

    found = await app.queries.get_balances(LEDGER, ["alice"] * MAX_BALANCES_PER_BATCH)

    assert len(found) == MAX_BALANCES_PER_BATCH
    assert (app.uow.transactions, app.uow.commits) == (transactions + 1, commits)


async def test_as_of_needs_a_time_zone(app: LedgerApp) -> None:
    with pytest.raises(LedgerdError) as caught:
        await app.queries.get_balances(LEDGER, ["alice"], as_of=START.replace(tzinfo=None))

    assert (caught.value.code, caught.value.details["field"]) == (
        ErrorCode.VALIDATION_FAILED,
        "as_of",
    )
