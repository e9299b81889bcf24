import dataclasses
from datetime import timedelta

import pytest

from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.paging import MAX_PAGE_SIZE
from ledgerd.ledger.application.expire_pending import ExpirePending
from ledgerd.ledger.application.verify_ledger import VerifyLedger
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.model import Balances, new_account
from ledgerd.ledger.domain.requests import CaptureRequest, ReversalRequest, VoidRequest
from tests.fakes.clock import START
from tests.fakes.ledger_app import LedgerApp
from tests.unit.ledger.application.scenario import LEDGER, USD, pay


async def _activity(app: LedgerApp) -> None:
    post = app.post_transfers.post_one
    await post(LEDGER, pay("fund", ("bank", "alice", 1000)))
    first = await post(LEDGER, pay("h1", ("alice", "bob", 100), pending=True, timeout=60))
    second = await post(LEDGER, pay("h2", ("alice", "bob", 100), pending=True))
    third = await post(LEDGER, pay("h3", ("alice", "bob", 100), pending=True, timeout=10))
    app.clock.advance(timedelta(seconds=30))
    await post(LEDGER, CaptureRequest(first.transfer.id, amount=60))
    await post(LEDGER, VoidRequest(second.transfer.id))
    assert await app.expire_pending(ExpirePending()) == 1
    paid = await post(LEDGER, pay("p", ("bob", "alice", 10)))
    await post(LEDGER, ReversalRequest(paid.transfer.id))
    assert third.transfer.expires_at is not None


async def test_a_busy_ledger_verifies(app: LedgerApp) -> None:
    await _activity(app)

    report = await app.verify_ledger(VerifyLedger(LEDGER))

    assert report.problems == []
    assert (report.transfers, report.accounts) == (9, 3)
    assert report.entries == sum(len(rows) for rows in app.tables.entries.values())
    assert report.totals["USD/2"].balanced


async def test_tampering_with_the_store_is_reported(app: LedgerApp) -> None:
    await _activity(app)
    key = (LEDGER, "alice")
    alice = app.tables.accounts[key]
    app.tables.accounts[key] = dataclasses.replace(
        alice, balances=dataclasses.replace(alice.balances, posted_credits=10**6)
    )
    fund = next(t for t in app.tables.transfers.values() if t.idempotency_key == "fund")
    app.tables.transfers[LEDGER, fund.id] = dataclasses.replace(fund, metadata={"x": "y"})

    report = await app.verify_ledger(VerifyLedger(LEDGER))

    assert "account alice: stored balances differ from its entries" in report.problems
    assert any("#1" in p and "altered record" in p for p in report.problems)


async def test_accounts_are_read_page_by_page(app: LedgerApp) -> None:
    extra = MAX_PAGE_SIZE + 1
    async with app.uow.begin() as tx:
        for index in range(extra):
            await app.accounts.add(new_account(LEDGER, f"x{index:05d}", USD, START))
        await tx.commit()
    last = app.tables.accounts[LEDGER, f"x{extra - 1:05d}"]
    app.tables.accounts[LEDGER, last.id] = dataclasses.replace(
        last, balances=Balances(posted_debits=1)
    )

    report = await app.verify_ledger(VerifyLedger(LEDGER))

    assert report.accounts == extra + 3
    assert f"account {last.id}: stored balances differ from its entries" in report.problems


async def test_unknown_ledger(app: LedgerApp) -> None:
    with pytest.raises(LedgerdError) as caught:
        await app.verify_ledger(VerifyLedger("nope"))

    assert caught.value.code is LedgerErrorCode.LEDGER_NOT_FOUND
