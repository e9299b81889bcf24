import asyncio
from datetime import timedelta

from ledgerd.ledger.application.expire_pending import ExpirePending
from ledgerd.ledger.domain.model import Balances, TransferKind, TransferStatus
from ledgerd.ledger.domain.requests import CaptureRequest
from tests.fakes.ledger_app import LedgerApp
from tests.unit.ledger.application.scenario import (
    FUNDED,
    account,
    create_ledger,
    open_account,
    pay,
)

LEDGER = "L"


async def _holds(app: LedgerApp) -> dict[str, str]:
    post = app.post_transfers.post_one
    await post(LEDGER, pay("fund", ("bank", "alice", 100)))
    ids = {}
    for key, timeout in (("short", 60), ("long", 120), ("forever", 0), ("captured", 60)):
        hold = await post(LEDGER, pay(key, ("alice", "bob", 10), pending=True, timeout=timeout))
        ids[key] = hold.transfer.id
    await post(LEDGER, CaptureRequest(ids["captured"]))
    return ids


def _status(app: LedgerApp, transfer_id: str) -> TransferStatus:
    return app.tables.transfers[LEDGER, transfer_id].status


async def test_holds_expire_once_their_timeout_passed(app: LedgerApp) -> None:
    ids = await _holds(app)
    sweep = app.expire_pending

    app.clock.advance(timedelta(seconds=59))
    assert await sweep(ExpirePending()) == 0
    app.clock.advance(timedelta(seconds=1))
    assert await sweep(ExpirePending()) == 1
    assert await sweep(ExpirePending()) == 0  # a second sweep finds nothing left to do

    assert _status(app, ids["short"]) is TransferStatus.EXPIRED
    assert _status(app, ids["long"]) is TransferStatus.PENDING
    assert account(app, "alice").balances.pending_debits == 20
    app.clock.advance(timedelta(days=365))
    assert await sweep(ExpirePending()) == 1
    assert _status(app, ids["long"]) is TransferStatus.EXPIRED
    assert _status(app, ids["forever"]) is TransferStatus.PENDING
    assert _status(app, ids["captured"]) is TransferStatus.CAPTURED
    assert account(app, "alice").balances == Balances(
        posted_debits=10, posted_credits=100, pending_debits=10
    )
    expiries = [t for t in app.tables.transfers.values() if t.kind is TransferKind.EXPIRY]
    assert sorted(t.target_id or "" for t in expiries) == sorted([ids["short"], ids["long"]])


async def test_the_sweep_respects_its_limit(app: LedgerApp) -> None:
    ids = await _holds(app)
    app.clock.advance(timedelta(hours=1))

    assert await app.expire_pending(ExpirePending(limit=1)) == 1
    assert _status(app, ids["short"]) is TransferStatus.EXPIRED
    assert await app.expire_pending(ExpirePending(limit=1)) == 1
    assert await app.expire_pending(ExpirePending(limit=1)) == 0


async def test_concurrent_sweeps_expire_each_hold_once(app: LedgerApp) -> None:
    await _holds(app)
    app.clock.advance(timedelta(hours=1))

    counts = await asyncio.gather(*(app.expire_pending(ExpirePending()) for _ in range(3)))

    assert sum(counts) == 2
    expiries = [t for t in app.tables.transfers.values() if t.kind is TransferKind.EXPIRY]
    assert len(expiries) == 2


async def test_the_sweep_covers_every_ledger(app: LedgerApp) -> None:
    await create_ledger(app, "M")
    await open_account(app, "x", ledger_id="M")
    await open_account(app, "y", ledger_id="M", flags=FUNDED)
    await app.post_transfers.post_one("M", pay("h", ("x", "y", 5), pending=True, timeout=1))
    await _holds(app)
    app.clock.advance(timedelta(hours=1))

    assert await app.expire_pending(ExpirePending()) == 3
    assert account(app, "y", "M").balances == Balances()
