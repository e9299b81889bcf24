"""The use cases record one event per change, in chain order, and nothing that did not stick."""

from __future__ import annotations

from ledgerd.kernel.result import Err, Ok
from ledgerd.ledger.application.batcher import BatchingOptions, PostingBatcher
from ledgerd.ledger.application.change_account_status import ChangeAccountStatus
from ledgerd.ledger.application.post_transfers import PostTransfers
from ledgerd.ledger.domain.events import (
    AccountCreated,
    AccountFrozen,
    LedgerCreated,
    PendingCaptured,
    PendingCreated,
    TransferPosted,
)
from ledgerd.ledger.domain.model import AccountStatus, TransferStatus
from ledgerd.ledger.domain.requests import CaptureRequest
from tests.fakes.ledger_app import make_ledger_app
from tests.unit.ledger.application.scenario import LEDGER, create_ledger, open_account, pay

TRANSFER_EVENTS = (TransferPosted, PendingCreated, PendingCaptured)


async def test_each_use_case_records_its_event() -> None:
    app = make_ledger_app()
    await create_ledger(app)
    await open_account(app, "bank")
    await open_account(app, "alice")
    await app.change_account_status(ChangeAccountStatus(LEDGER, "alice", AccountStatus.FROZEN))
    await app.change_account_status(ChangeAccountStatus(LEDGER, "alice", AccountStatus.FROZEN))

    events = app.tables.events[LEDGER]
    assert [type(event) for event in events] == [
        LedgerCreated,
        AccountCreated,
        AccountCreated,
        AccountFrozen,  # once: freezing a frozen account changes nothing
    ]
    frozen = events[-1]
    assert isinstance(frozen, AccountFrozen)
    assert frozen.account.status is AccountStatus.FROZEN
    assert frozen.account.version == app.tables.accounts[(LEDGER, "alice")].version


async def test_a_batch_records_its_transfers_as_each_was_created() -> None:
    app = make_ledger_app()
    await create_ledger(app)
    await open_account(app, "bank")
    await open_account(app, "alice")
    hold = pay("h", ("bank", "alice", 30), pending=True)
    (placed,) = await app.post_transfers(PostTransfers(LEDGER, [hold]))
    assert isinstance(placed, Ok)
    outcome = await app.post_transfers(
        PostTransfers(
            LEDGER, [pay("p", ("bank", "alice", 5)), CaptureRequest(placed.value.transfer.id)]
        )
    )
    assert all(isinstance(result, Ok) for result in outcome)

    transfer_events = [e for e in app.tables.events[LEDGER] if isinstance(e, TRANSFER_EVENTS)]
    assert [type(event) for event in transfer_events] == [
        PendingCreated,
        TransferPosted,
        PendingCaptured,
    ]
    assert [event.transfer.sequence for event in transfer_events] == [1, 2, 3]
    created = transfer_events[0]
    assert isinstance(created, PendingCreated)
    # Captured since, but its event shows the hold as placed.
    assert created.transfer.status is TransferStatus.PENDING
    assert [entry.account_id for entry in created.entries] == ["bank", "alice"]
    assert dict(created.normal_sides) == {
        account_id: app.tables.accounts[(LEDGER, account_id)].normal_side
        for account_id in ("bank", "alice")
    }


async def test_a_failed_atomic_command_in_a_shared_group_leaves_no_event() -> None:
    app = make_ledger_app()
    await create_ledger(app)
    await open_account(app, "bank")
    await open_account(app, "alice")
    before = len(app.tables.events[LEDGER])
    good = PostTransfers(LEDGER, [pay("g", ("bank", "alice", 1))])
    doomed = PostTransfers(
        LEDGER, [pay("d1", ("bank", "alice", 1)), pay("d2", ("bank", "nobody", 1))], atomic=True
    )
    # One unit of work for both callers: the atomic one rolls back to its savepoint.
    outcomes = await app.post_transfers.post_group(LEDGER, [good, doomed])
    assert outcomes[0] is not None
    assert isinstance(outcomes[0][0], Ok)
    assert outcomes[1] is not None
    assert all(isinstance(result, Err) for result in outcomes[1])

    recorded = app.tables.events[LEDGER][before:]
    assert [e.transfer.idempotency_key for e in recorded if isinstance(e, TRANSFER_EVENTS)] == ["g"]
    assert len(recorded) == 1


async def test_the_batcher_records_what_each_caller_posted() -> None:
    app = make_ledger_app()
    await create_ledger(app)
    await open_account(app, "bank")
    await open_account(app, "alice")
    async with PostingBatcher(app.post_transfers, BatchingOptions()) as batcher:
        for key in ("a", "b", "a"):  # the second "a" is a replay: no new event
            await batcher.post_one(LEDGER, pay(key, ("bank", "alice", 1)))
    keys = [
        event.transfer.idempotency_key
        for event in app.tables.events[LEDGER]
        if isinstance(event, TransferPosted)
    ]
    assert keys == ["a", "b"]
