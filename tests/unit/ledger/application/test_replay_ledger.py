"""Replay on the fakes: balances rebuilt from the events alone match; a difference is named."""

from __future__ import annotations

import dataclasses

import pytest

from ledgerd.kernel.errors import LedgerdError
from ledgerd.ledger.application.replay_ledger import ReplayLedger, ReplayReport
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.events import TransferPosted
from ledgerd.ledger.domain.model import new_account
from ledgerd.ledger.domain.requests import CaptureRequest, ReversalRequest
from tests.fakes.clock import START
from tests.fakes.ledger_app import LedgerApp
from tests.unit.ledger.application.scenario import LEDGER, USD, pay

# What the `app` fixture made (a ledger, three accounts) and what _activity adds.
SET_UP_EVENTS = 4
TRANSFERS = 4


async def _activity(app: LedgerApp) -> None:
    post = app.post_transfers.post_one
    await post(LEDGER, pay("fund", ("bank", "alice", 1000)))
    hold = await post(LEDGER, pay("hold", ("alice", "bob", 300), pending=True))
    await post(LEDGER, CaptureRequest(hold.transfer.id, amount=200))
    paid = await post(LEDGER, pay("paid", ("bob", "alice", 10)))
    await post(LEDGER, ReversalRequest(paid.transfer.id))


async def _replay(app: LedgerApp) -> ReplayReport:
    return await app.replay_ledger(ReplayLedger(LEDGER))


async def test_balances_rebuilt_from_the_events_match_the_stored_ones(app: LedgerApp) -> None:
    await _activity(app)

    report = await _replay(app)

    assert report.problems == []
    assert report.ok
    assert (report.events, report.transfers, report.accounts) == (
        SET_UP_EVENTS + TRANSFERS + 1,
        TRANSFERS + 1,
        3,
    )
    assert report.journal == "hash chain and balances match the journal"


async def test_a_stored_balance_changed_behind_the_ledgers_back_is_named(app: LedgerApp) -> None:
    await _activity(app)
    alice = app.tables.accounts[LEDGER, "alice"]
    app.tables.accounts[LEDGER, "alice"] = dataclasses.replace(
        alice, balances=dataclasses.replace(alice.balances, posted_credits=10**6)
    )

    report = await _replay(app)

    assert not report.ok
    assert report.journal == "FAILED"
    rebuilt = [p for p in report.problems if "rebuilt from the events" in p]
    assert rebuilt == [
        f"account alice: stored [210, {10**6}, 0, 0], rebuilt from the events [210, 1010, 0, 0]"
    ]
    assert any(p.startswith("journal: ") for p in report.problems)


async def test_a_lost_transfer_event_breaks_the_chain_order_and_the_running_balances(
    app: LedgerApp,
) -> None:
    await _activity(app)
    stream = app.tables.events[LEDGER]
    funding = next(event for event in stream if isinstance(event, TransferPosted))
    stream.remove(funding)

    report = await _replay(app)

    # The journal itself is intact: only the stream lost the funding.
    assert not any(p.startswith("journal: ") for p in report.problems)
    assert any(p.endswith(" is chain position 2, expected 1") for p in report.problems)
    assert any(" by the events so far, but the entry says " in p for p in report.problems)
    differing = {p.split(":")[0] for p in report.problems if "rebuilt from the events" in p}
    assert differing == {"account bank", "account alice"}


async def test_an_account_without_its_creation_event_is_named(app: LedgerApp) -> None:
    async with app.uow.begin() as tx:
        await app.accounts.add(new_account(LEDGER, "ghost", USD, START))
        await tx.commit()

    report = await _replay(app)

    assert report.problems == ["account ghost has no AccountCreated event"]


async def test_an_unknown_ledger_is_not_found(app: LedgerApp) -> None:
    with pytest.raises(LedgerdError) as raised:
        await app.replay_ledger(ReplayLedger("nowhere"))
    assert raised.value.code is LedgerErrorCode.LEDGER_NOT_FOUND
