"""The ledger's whole lifecycle over gRPC, on SQLite and PostgreSQL, through the generated client.

Ledgers and accounts, transfers and batches, holds (captured, voided, expired), reversals, and
every way of reading it back: transfers, balances now and in the past, statements and exports.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ledgerd.ledger.application.expire_pending import ExpirePending
from ledgerd.v1 import ledger_pb2 as pb
from tests.e2e.grpc.conftest import GrpcApi
from tests.e2e.grpc.support import (
    all_entries,
    all_transfers,
    balance,
    expect_error,
    instant,
    ledger_state,
    leg,
    pay,
    transfer,
    ts,
)
from tests.integration.conftest import EPOCH

if TYPE_CHECKING:
    from ledgerd.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

L = "shop"
USD = "USD/2"
FUNDED = pb.AccountFlags(debits_must_not_exceed_credits=True)
# More entries than the server reads per page (1000) while exporting a statement.
MORE_THAN_A_PAGE = 1_205
BATCH = 500
EXISTS = grpc.StatusCode.ALREADY_EXISTS
REFUSED = grpc.StatusCode.FAILED_PRECONDITION


async def _open(
    stub: LedgerServiceAsyncStub,
    account: str,
    *,
    flags: pb.AccountFlags | None = None,
    asset: str = USD,
    metadata: dict[str, str] | None = None,
) -> pb.Account:
    return await stub.CreateAccount(
        pb.CreateAccountRequest(
            ledger=L, id=account, asset=asset, flags=flags, metadata=metadata or {}
        )
    )


async def _books(stub: LedgerServiceAsyncStub) -> None:
    """Ledger ``shop``: an unconstrained ``bank``; ``alice`` and ``bob`` must stay funded."""
    await stub.CreateLedger(pb.CreateLedgerRequest(id=L, name="Shop"))
    await _open(stub, "bank")
    await _open(stub, "alice", flags=FUNDED)
    await _open(stub, "bob", flags=FUNDED)


async def _balance(stub: LedgerServiceAsyncStub, account: str) -> pb.Balance:
    return (await stub.GetBalance(pb.GetBalanceRequest(ledger=L, account=account))).balance


async def _get(stub: LedgerServiceAsyncStub, transfer_id: str) -> pb.Transfer:
    return await stub.GetTransfer(pb.GetTransferRequest(ledger=L, transfer=transfer_id))


async def _post(stub: LedgerServiceAsyncStub, message: pb.TransferInput) -> pb.Transfer:
    return await stub.PostTransfer(pb.PostTransferRequest(ledger=L, transfer=message))


# --- ledgers and accounts --------------------------------------------------------------------


async def test_a_ledger_is_created_once(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    request = pb.CreateLedgerRequest(id=L, name="Shop", metadata={"team": "core"})

    created = await stub.CreateLedger(request)
    grpc_api.clock.advance(timedelta(minutes=5))
    again = await stub.CreateLedger(request)

    assert (created.id, created.name, dict(created.metadata)) == (L, "Shop", {"team": "core"})
    assert instant(created.created_at) == EPOCH
    assert again == created
    assert await stub.GetLedger(pb.GetLedgerRequest(ledger=L)) == created
    other = pb.CreateLedgerRequest(id=L, name="Shop", metadata={"team": "payments"})
    failed = await expect_error(stub.CreateLedger(other), EXISTS, "LEDGER_ALREADY_EXISTS")
    assert failed.details == {"ledger": L}
    assert await stub.GetLedger(pb.GetLedgerRequest(ledger=L)) == created


async def test_an_account_is_opened_once_with_its_flags_overdraft_and_metadata(
    grpc_api: GrpcApi,
) -> None:
    stub = grpc_api.stub
    await _books(stub)
    flags = pb.AccountFlags(debits_must_not_exceed_credits=True, overdraft_limit=500)
    metadata = {"kind": "wallet", "tier": "gold"}

    opened = await _open(stub, "carol", flags=flags, metadata=metadata)
    grpc_api.clock.advance(timedelta(seconds=1))
    again = await _open(stub, "carol", flags=flags, metadata=metadata)

    assert (opened.id, opened.ledger, opened.asset) == ("carol", L, USD)
    assert opened.flags == flags
    assert (opened.status, dict(opened.metadata), opened.version) == (pb.Account.OPEN, metadata, 0)
    assert opened.balance == balance(available=0)
    assert instant(opened.created_at) == EPOCH
    assert again == opened
    assert await stub.GetAccount(pb.GetAccountRequest(ledger=L, account="carol")) == opened
    for different in (
        pb.CreateAccountRequest(ledger=L, id="carol", asset=USD, flags=flags),
        pb.CreateAccountRequest(
            ledger=L, id="carol", asset="EUR/2", flags=flags, metadata=metadata
        ),
        pb.CreateAccountRequest(ledger=L, id="carol", asset=USD, metadata=metadata),
    ):
        await expect_error(stub.CreateAccount(different), EXISTS, "ACCOUNT_ALREADY_EXISTS")

    # The overdraft lets carol go 500 below zero, and not one cent further.
    await _post(stub, pay("spend", "carol", "bob", 500))
    assert await _balance(stub, "carol") == balance(posted_debits=500, available=-500)
    await expect_error(
        _post(stub, pay("spend-more", "carol", "bob", 1)), REFUSED, "INSUFFICIENT_FUNDS"
    )


async def test_account_status_changes(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    alice = pb.AccountStatusRequest(ledger=L, account="alice")

    frozen = await stub.FreezeAccount(alice)
    unfrozen = await stub.UnfreezeAccount(alice)
    closed = await stub.CloseAccount(alice)

    assert [(a.status, a.version) for a in (frozen, unfrozen, closed)] == [
        (pb.Account.FROZEN, 1),
        (pb.Account.OPEN, 2),
        (pb.Account.CLOSED, 3),
    ]
    assert await stub.GetAccount(pb.GetAccountRequest(ledger=L, account="alice")) == closed


async def test_a_frozen_accounts_holds_can_be_voided_but_not_captured(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    await _post(stub, pay("fund", "bank", "bob", 100))
    first = await _post(stub, transfer("h1", leg("bob", "alice", 60), hold=True))
    second = await _post(stub, transfer("h2", leg("bob", "alice", 40), hold=True))
    bob = pb.AccountStatusRequest(ledger=L, account="bob")
    await stub.FreezeAccount(bob)

    capture = stub.CapturePending(pb.CapturePendingRequest(ledger=L, transfer=first.id))
    await expect_error(capture, REFUSED, "ACCOUNT_FROZEN")
    await expect_error(stub.CloseAccount(bob), REFUSED, "ACCOUNT_HAS_PENDING")
    for hold in (first, second):
        await stub.VoidPending(pb.VoidPendingRequest(ledger=L, transfer=hold.id))
    closed = await stub.CloseAccount(bob)

    assert closed.status == pb.Account.CLOSED
    assert closed.balance == balance(0, 100, available=100)
    await expect_error(_post(stub, pay("late", "bank", "bob", 1)), REFUSED, "ACCOUNT_CLOSED")


async def test_a_debit_normal_account_counts_available_on_its_debit_side(
    grpc_api: GrpcApi,
) -> None:
    stub = grpc_api.stub
    await _books(stub)
    limited = pb.AccountFlags(credits_must_not_exceed_debits=True, overdraft_limit=10)
    await _open(stub, "loan", flags=limited)
    await _post(stub, pay("lend", "loan", "bank", 70))
    await _post(stub, transfer("repay", leg("bank", "loan", 20), hold=True))

    assert await _balance(stub, "loan") == balance(70, 0, 0, 20, available=50)
    entries = await all_entries(stub, L, "loan")
    assert [e.balance_after.available for e in entries] == [70, 50]
    # Credits may pass debits by the overdraft limit (10), and no further.
    await _post(stub, pay("repay-more", "bank", "loan", 60))
    await expect_error(
        _post(stub, pay("too-much", "bank", "loan", 1)), REFUSED, "CREDIT_LIMIT_EXCEEDED"
    )
    assert await _balance(stub, "loan") == balance(70, 60, 0, 20, available=-10)


async def test_list_ledgers_pages_by_id(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    empty = await stub.ListLedgers(pb.ListLedgersRequest())
    assert (list(empty.ledgers), empty.next_page_token) == ([], "")
    ids = [f"books-{number:02d}" for number in range(7)]
    for ledger_id in reversed(ids):
        await stub.CreateLedger(
            pb.CreateLedgerRequest(id=ledger_id, name=ledger_id.upper(), metadata={"k": ledger_id})
        )

    async def pages(page_size: int) -> list[list[str]]:
        found: list[list[str]] = []
        token = ""
        while True:
            page = await stub.ListLedgers(
                pb.ListLedgersRequest(page_size=page_size, page_token=token)
            )
            found.append([ledger.id for ledger in page.ledgers])
            token = page.next_page_token
            if not token:
                return found

    assert await pages(3) == [ids[0:3], ids[3:6], ids[6:]]
    assert await pages(7) == [ids]
    assert await pages(0) == [ids]  # the default page: 100
    first = (await stub.ListLedgers(pb.ListLedgersRequest(page_size=1))).ledgers[0]
    assert first == await stub.GetLedger(pb.GetLedgerRequest(ledger=ids[0]))
    await expect_error(
        stub.ListLedgers(pb.ListLedgersRequest(page_token="garbage!")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "VALIDATION_FAILED",
    )


async def test_list_accounts_filters_by_metadata_and_pages(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await stub.CreateLedger(pb.CreateLedgerRequest(id=L))
    for number in range(23):
        await _open(
            stub,
            f"acct-{number:02d}",
            metadata={
                "team": "red" if number % 3 else "blue",
                **({"vip": "yes"} if number % 5 == 0 else {}),
            },
        )

    async def pages(page_size: int, *metadata: str) -> list[list[str]]:
        found: list[list[str]] = []
        token = ""
        while True:
            page = await stub.ListAccounts(
                pb.ListAccountsRequest(
                    ledger=L, page_size=page_size, page_token=token, metadata=metadata
                )
            )
            found.append([account.id for account in page.accounts])
            token = page.next_page_token
            if not token:
                return found

    reds = [f"acct-{n:02d}" for n in range(23) if n % 3]
    assert await pages(4, "team=red") == [reds[i : i + 4] for i in range(0, len(reds), 4)]
    assert await pages(2, "team=blue", "vip=yes") == [["acct-00", "acct-15"]]
    assert await pages(5, "vip=yes") == [["acct-00", "acct-05", "acct-10", "acct-15", "acct-20"]]
    assert await pages(7) == [
        [f"acct-{n:02d}" for n in range(start, min(start + 7, 23))] for start in range(0, 23, 7)
    ]
    assert await pages(0) == [[f"acct-{n:02d}" for n in range(23)]]  # the default page: 100
    assert await pages(3, "team=green") == [[]]


# --- transfers -------------------------------------------------------------------------------


async def test_post_and_get_transfers(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)

    first = await _post(
        stub, transfer("salary", leg("bank", "alice", 10_000), metadata={"month": "jan"})
    )
    grpc_api.clock.advance(timedelta(seconds=30))
    second = await _post(
        stub, transfer("split", leg("alice", "bob", 2_500, USD), leg("bank", "bob", 100))
    )

    assert (first.ledger, first.idempotency_key, first.kind, first.status) == (
        L,
        "salary",
        pb.Transfer.POSTING,
        pb.Transfer.POSTED,
    )
    assert list(first.legs) == [leg("bank", "alice", 10_000, USD)]
    assert dict(first.metadata) == {"month": "jan"}
    assert instant(first.created_at) == EPOCH
    assert not first.HasField("pending")
    assert not first.HasField("expires_at")
    assert (first.target_id, first.sequence, first.prev_hash) == ("", 1, "0" * 64)
    assert len(first.id) == 32
    assert len(first.hash) == 64
    assert list(second.legs) == [leg("alice", "bob", 2_500, USD), leg("bank", "bob", 100, USD)]
    assert (second.sequence, second.prev_hash) == (2, first.hash)
    assert instant(second.created_at) == EPOCH + timedelta(seconds=30)
    assert await _get(stub, first.id) == first
    assert await _get(stub, second.id) == second
    assert await _balance(stub, "alice") == balance(2_500, 10_000, available=7_500)
    assert await _balance(stub, "bob") == balance(0, 2_600, available=2_600)
    assert await _balance(stub, "bank") == balance(10_100, 0, available=-10_100)


async def test_a_transfer_is_found_by_its_idempotency_key(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    posted = await _post(stub, pay("order-17", "bank", "alice", 500))
    hold = await _post(stub, transfer("h", leg("alice", "bob", 100), hold=True))
    capture = await stub.CapturePending(pb.CapturePendingRequest(ledger=L, transfer=hold.id))

    async def by_key(key: str, ledger: str = L) -> pb.Transfer:
        return await stub.GetTransferByKey(
            pb.GetTransferByKeyRequest(ledger=ledger, idempotency_key=key)
        )

    assert await by_key("order-17") == posted
    assert await by_key(f"capture/{hold.id}") == capture  # a derived key too
    missing = await expect_error(
        by_key("order-18"), grpc.StatusCode.NOT_FOUND, "TRANSFER_NOT_FOUND"
    )
    assert missing.details == {"idempotency_key": "order-18"}
    await expect_error(by_key("order-17", "nowhere"), grpc.StatusCode.NOT_FOUND, "LEDGER_NOT_FOUND")
    for bad in ("", "a b", "teleport/x", "capture/", "x" * 129):
        await expect_error(by_key(bad), grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_FAILED")


async def test_a_batch_without_atomic_posts_what_it_can(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    batch = [
        pay("b1", "bank", "alice", 1_000),
        pay("b2", "alice", "bob", 5_000),  # alice has 1000
        pay("b3", "alice", "bob", 400),
        pay("b4", "bank", "bob", 0),
        pay("b5", "bank", "nobody", 1),
        pay("b6", "bank", "bob", 7),
    ]

    response = await stub.PostTransfers(pb.PostTransfersRequest(ledger=L, transfers=batch))

    outcomes = [result.WhichOneof("outcome") for result in response.results]
    assert outcomes == ["transfer", "error", "transfer", "error", "error", "transfer"]
    errors = [result.error for result in response.results if result.HasField("error")]
    assert [e.code for e in errors] == [
        "INSUFFICIENT_FUNDS",
        "VALIDATION_FAILED",
        "ACCOUNT_NOT_FOUND",
    ]
    assert all(e.message for e in errors)
    assert dict(errors[0].details) == {"account": "alice"}
    assert dict(errors[2].details) == {"account": "nobody"}
    posted = [result.transfer for result in response.results if result.HasField("transfer")]
    # Failed requests take no sequence number: the chain has no gaps.
    assert [t.sequence for t in posted] == [1, 2, 3]
    assert [t.idempotency_key for t in posted] == ["b1", "b3", "b6"]
    assert not any(result.replayed for result in response.results)
    for posted_transfer in posted:
        assert await _get(stub, posted_transfer.id) == posted_transfer
    assert await _balance(stub, "alice") == balance(400, 1_000, available=600)
    assert await _balance(stub, "bob") == balance(0, 407, available=407)

    # The same batch again: what was posted replays, what failed fails again.
    replay = await stub.PostTransfers(pb.PostTransfersRequest(ledger=L, transfers=batch))
    assert [r.replayed for r in replay.results] == [True, False, True, False, False, True]
    assert [r.transfer.id for r in replay.results if r.HasField("transfer")] == [
        t.id for t in posted
    ]
    assert await _balance(stub, "alice") == balance(400, 1_000, available=600)


async def test_an_atomic_batch_with_one_failure_writes_nothing(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    await _post(stub, pay("fund", "bank", "alice", 100))
    accounts = ("bank", "alice", "bob")
    before = await ledger_state(stub, L, accounts)
    batch = [
        pay("a1", "bank", "bob", 50),
        pay("a2", "alice", "bob", 100),
        pay("a3", "alice", "bob", 1),  # alice's 100 went in a2
        pay("a4", "bank", "alice", 5),
    ]

    response = await stub.PostTransfers(
        pb.PostTransfersRequest(ledger=L, transfers=batch, atomic=True)
    )

    assert [r.error.code for r in response.results] == [
        "BATCH_ABORTED",
        "BATCH_ABORTED",
        "INSUFFICIENT_FUNDS",
        "BATCH_ABORTED",
    ]
    assert all(r.WhichOneof("outcome") == "error" for r in response.results)
    assert await ledger_state(stub, L, accounts) == before
    # Nothing was remembered either: the good part goes through with the same keys.
    retried = await stub.PostTransfers(
        pb.PostTransfersRequest(ledger=L, transfers=[batch[0], batch[1], batch[3]], atomic=True)
    )
    assert [r.WhichOneof("outcome") for r in retried.results] == ["transfer"] * 3
    assert not any(r.replayed for r in retried.results)
    assert await _balance(stub, "alice") == balance(100, 105, available=5)
    assert await _balance(stub, "bob") == balance(0, 150, available=150)


# --- holds -----------------------------------------------------------------------------------


async def test_holds_are_captured_in_full_or_in_part_or_voided(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    await _post(stub, pay("fund", "bank", "alice", 1_000))

    hold = await _post(stub, transfer("h1", leg("alice", "bob", 300), hold=True, timeout_s=3600))
    assert (hold.kind, hold.status) == (pb.Transfer.HOLD, pb.Transfer.PENDING)
    assert hold.pending.timeout_seconds == 3600
    assert instant(hold.expires_at) == EPOCH + timedelta(hours=1)
    assert await _balance(stub, "alice") == balance(0, 1_000, 300, 0, available=700)
    assert await _balance(stub, "bob") == balance(0, 0, 0, 300, available=0)

    # In full, under the default key "capture/<id>"; a retry replays it.
    grpc_api.clock.advance(timedelta(minutes=1))
    capture = await stub.CapturePending(pb.CapturePendingRequest(ledger=L, transfer=hold.id))
    assert (capture.kind, capture.status, capture.target_id) == (
        pb.Transfer.CAPTURE,
        pb.Transfer.POSTED,
        hold.id,
    )
    assert capture.idempotency_key == f"capture/{hold.id}"
    assert list(capture.legs) == list(hold.legs)
    assert not capture.HasField("pending")
    assert (await _get(stub, hold.id)).status == pb.Transfer.CAPTURED
    assert await stub.CapturePending(pb.CapturePendingRequest(ledger=L, transfer=hold.id)) == (
        capture
    )
    assert await _balance(stub, "alice") == balance(300, 1_000, available=700)
    assert await _balance(stub, "bob") == balance(0, 300, available=300)

    # In part: 50 of 200 is posted, the other 150 released.
    partial_hold = await _post(stub, transfer("h2", leg("alice", "bob", 200), hold=True))
    assert partial_hold.pending.timeout_seconds == 0
    assert not partial_hold.HasField("expires_at")
    partial = await stub.CapturePending(
        pb.CapturePendingRequest(
            ledger=L, transfer=partial_hold.id, amount=50, idempotency_key="take-50"
        )
    )
    assert list(partial.legs) == [leg("alice", "bob", 50, USD)]
    assert partial.idempotency_key == "take-50"
    assert (await _get(stub, partial_hold.id)).status == pb.Transfer.CAPTURED
    assert await _balance(stub, "alice") == balance(350, 1_000, available=650)
    assert await _balance(stub, "bob") == balance(0, 350, available=350)

    # Voided: everything released, nothing moved.
    voided_hold = await _post(stub, transfer("h3", leg("alice", "bob", 600), hold=True))
    assert await _balance(stub, "alice") == balance(350, 1_000, 600, available=50)
    void = await stub.VoidPending(
        pb.VoidPendingRequest(ledger=L, transfer=voided_hold.id, metadata={"why": "cancelled"})
    )
    assert (void.kind, void.status, void.target_id) == (
        pb.Transfer.VOID,
        pb.Transfer.POSTED,
        voided_hold.id,
    )
    assert (void.idempotency_key, dict(void.metadata)) == (
        f"void/{voided_hold.id}",
        {"why": "cancelled"},
    )
    assert (await _get(stub, voided_hold.id)).status == pb.Transfer.VOIDED
    assert await _balance(stub, "alice") == balance(350, 1_000, available=650)
    assert await _balance(stub, "bob") == balance(0, 350, available=350)

    # The journal shows the pending layer filling and emptying.
    bob = await all_entries(stub, L, "bob")
    assert [(e.layer, e.amount) for e in bob] == [
        (pb.Entry.PENDING, 300),
        (pb.Entry.PENDING, -300),
        (pb.Entry.POSTED, 300),
        (pb.Entry.PENDING, 200),
        (pb.Entry.PENDING, -200),
        (pb.Entry.POSTED, 50),
        (pb.Entry.PENDING, 600),
        (pb.Entry.PENDING, -600),
    ]


async def test_a_hold_expires_when_its_timeout_passes(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    await _post(stub, pay("fund", "bank", "alice", 1_000))
    hold = await _post(stub, transfer("h", leg("alice", "bob", 400), hold=True, timeout_s=60))
    sweep = grpc_api.app.expire

    grpc_api.clock.advance(timedelta(seconds=59))
    assert await sweep(ExpirePending()) == 0
    assert (await _get(stub, hold.id)).status == pb.Transfer.PENDING

    grpc_api.clock.advance(timedelta(seconds=1))
    # Due but not yet swept: it can no longer be captured or voided.
    capture = pb.CapturePendingRequest(ledger=L, transfer=hold.id)
    await expect_error(stub.CapturePending(capture), REFUSED, "PENDING_EXPIRED")
    assert (await _get(stub, hold.id)).status == pb.Transfer.PENDING
    assert await _balance(stub, "alice") == balance(0, 1_000, 400, available=600)

    assert await sweep(ExpirePending()) == 1
    assert await sweep(ExpirePending()) == 0
    assert (await _get(stub, hold.id)).status == pb.Transfer.EXPIRED
    assert await _balance(stub, "alice") == balance(0, 1_000, available=1_000)
    assert await _balance(stub, "bob") == balance(available=0)
    (*_, expiry) = (await all_transfers(stub, pb.ListTransfersRequest(ledger=L)))[-1]
    assert (expiry.kind, expiry.status, expiry.target_id, expiry.idempotency_key) == (
        pb.Transfer.EXPIRY,
        pb.Transfer.POSTED,
        hold.id,
        f"expire/{hold.id}",
    )
    assert instant(expiry.created_at) == EPOCH + timedelta(seconds=60)
    await expect_error(stub.CapturePending(capture), REFUSED, "PENDING_EXPIRED")
    void = pb.VoidPendingRequest(ledger=L, transfer=hold.id)
    await expect_error(stub.VoidPending(void), REFUSED, "PENDING_EXPIRED")


# --- reversals -------------------------------------------------------------------------------


async def test_reversals(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    payment = await _post(stub, transfer("p", leg("bank", "alice", 700), leg("bank", "bob", 30)))

    reversal = await stub.ReverseTransfer(
        pb.ReverseTransferRequest(ledger=L, transfer=payment.id, metadata={"why": "mistake"})
    )

    assert (reversal.kind, reversal.status, reversal.target_id) == (
        pb.Transfer.REVERSAL,
        pb.Transfer.POSTED,
        payment.id,
    )
    assert reversal.idempotency_key == f"reverse/{payment.id}"
    assert list(reversal.legs) == [leg("alice", "bank", 700, USD), leg("bob", "bank", 30, USD)]
    assert (await _get(stub, payment.id)).status == pb.Transfer.REVERSED
    assert await _balance(stub, "alice") == balance(700, 700, available=0)
    # Retrying with the default key replays; the reversal itself can be reversed.
    again = pb.ReverseTransferRequest(ledger=L, transfer=payment.id, metadata={"why": "mistake"})
    assert await stub.ReverseTransfer(again) == reversal
    redo = await stub.ReverseTransfer(pb.ReverseTransferRequest(ledger=L, transfer=reversal.id))
    assert list(redo.legs) == [leg("bank", "alice", 700, USD), leg("bank", "bob", 30, USD)]
    assert (await _get(stub, reversal.id)).status == pb.Transfer.REVERSED
    assert await _balance(stub, "alice") == balance(700, 1_400, available=700)

    # A reversal obeys the limits of any posting: alice has spent what it would take back.
    await _post(stub, pay("spend", "alice", "bob", 700))
    await expect_error(
        stub.ReverseTransfer(pb.ReverseTransferRequest(ledger=L, transfer=redo.id)),
        REFUSED,
        "INSUFFICIENT_FUNDS",
    )
    assert (await _get(stub, redo.id)).status == pb.Transfer.POSTED


# --- reading it back -------------------------------------------------------------------------


async def test_list_transfers_by_account_and_time_range_in_pages(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    minute = timedelta(minutes=1)
    t0 = grpc_api.clock.now()
    t1, t2, t3 = t0 + minute, t0 + 2 * minute, t0 + 3 * minute
    posted: list[pb.Transfer] = []
    # Two transfers per minute; alice is in #1, #3, #4 (a hold) and #6 (its void).
    for at, message in (
        (t0, pay("k1", "bank", "alice", 500)),
        (t0, pay("k2", "bank", "bob", 500)),
        (t1, pay("k3", "alice", "bob", 100)),
        (t1, transfer("k4", leg("alice", "bob", 50), hold=True)),
        (t2, pay("k5", "bob", "bank", 10)),
    ):
        grpc_api.clock.advance(at - grpc_api.clock.now())
        posted.append(await _post(stub, message))
    grpc_api.clock.advance(t3 - grpc_api.clock.now())
    posted.append(await stub.VoidPending(pb.VoidPendingRequest(ledger=L, transfer=posted[3].id)))
    hold_now = await _get(stub, posted[3].id)

    async def listed(
        page_size: int = 0,
        account: str = "",
        start_time: Timestamp | None = None,
        end_time: Timestamp | None = None,
    ) -> list[list[int]]:
        request = pb.ListTransfersRequest(
            ledger=L,
            page_size=page_size,
            account=account,
            start_time=start_time,
            end_time=end_time,
        )
        return [[t.sequence for t in page] for page in await all_transfers(stub, request)]

    assert await listed() == [[1, 2, 3, 4, 5, 6]]
    assert await listed(4) == [[1, 2, 3, 4], [5, 6]]
    assert await listed(3) == [[1, 2, 3], [4, 5, 6]]
    assert await listed(account="alice") == [[1, 3, 4, 6]]
    assert await listed(1, account="alice") == [[1], [3], [4], [6]]
    assert await listed(3, account="bank") == [[1, 2, 5]]
    await expect_error(
        stub.ListTransfers(pb.ListTransfersRequest(ledger=L, account="nobody")),
        grpc.StatusCode.NOT_FOUND,
        "ACCOUNT_NOT_FOUND",
    )
    assert await listed(start_time=ts(t1)) == [[3, 4, 5, 6]]
    assert await listed(end_time=ts(t1)) == [[1, 2]]
    assert await listed(start_time=ts(t1), end_time=ts(t2)) == [[3, 4]]
    assert await listed(start_time=ts(t1 + timedelta(microseconds=1))) == [[5, 6]]
    assert await listed(end_time=ts(t1 + timedelta(microseconds=1))) == [[1, 2, 3, 4]]
    assert await listed(2, account="alice", start_time=ts(t1), end_time=ts(t3)) == [[3, 4]]
    assert await listed(2, account="alice", start_time=ts(t1)) == [[3, 4], [6]]
    assert await listed(start_time=ts(t1), end_time=ts(t1)) == [[]]  # an empty window
    # Swapped bounds are a mistake to report, not a window to answer with an empty page.
    await expect_error(
        stub.ListTransfers(pb.ListTransfersRequest(ledger=L, start_time=ts(t2), end_time=ts(t1))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "VALIDATION_FAILED",
    )
    # The listing carries whole transfers, in their current state.
    (everything,) = await all_transfers(stub, pb.ListTransfersRequest(ledger=L))
    assert everything[:3] == posted[:3]
    assert everything[3] == hold_now
    assert hold_now.status == pb.Transfer.VOIDED
    assert everything[4:] == posted[4:]


async def test_list_transfers_by_kind_and_status(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    await _post(stub, pay("fund", "bank", "alice", 500))
    holds = [
        await _post(stub, transfer(f"h{n}", leg("alice", "bob", 10), hold=True)) for n in (1, 2, 3)
    ]
    await stub.CapturePending(pb.CapturePendingRequest(ledger=L, transfer=holds[0].id))
    await stub.VoidPending(pb.VoidPendingRequest(ledger=L, transfer=holds[1].id))

    async def listed(
        kind: pb.Transfer.Kind.ValueType = pb.Transfer.KIND_UNSPECIFIED,
        status: pb.Transfer.Status.ValueType = pb.Transfer.STATUS_UNSPECIFIED,
        page_size: int = 0,
    ) -> list[list[int]]:
        request = pb.ListTransfersRequest(ledger=L, kind=kind, status=status, page_size=page_size)
        return [[t.sequence for t in page] for page in await all_transfers(stub, request)]

    open_holds = await stub.ListTransfers(
        pb.ListTransfersRequest(ledger=L, kind=pb.Transfer.HOLD, status=pb.Transfer.PENDING)
    )
    assert list(open_holds.transfers) == [await _get(stub, holds[2].id)]
    assert await listed(pb.Transfer.HOLD) == [[2, 3, 4]]
    assert await listed(pb.Transfer.HOLD, page_size=2) == [[2, 3], [4]]
    assert await listed(status=pb.Transfer.VOIDED) == [[3]]
    assert await listed(pb.Transfer.CAPTURE) == [[5]]
    assert await listed(status=pb.Transfer.POSTED, page_size=1) == [[1], [5], [6]]
    assert await listed(pb.Transfer.EXPIRY) == [[]]
    assert await listed() == [[1, 2, 3, 4, 5, 6]]
    # proto3 enums are open: a number the API does not know is refused, naming the field.
    for request, field in [
        (pb.ListTransfersRequest(ledger=L, kind=99), "kind"),  # type: ignore[arg-type]
        (pb.ListTransfersRequest(ledger=L, status=-1), "status"),  # type: ignore[arg-type]
    ]:
        refused = await expect_error(
            stub.ListTransfers(request), grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_FAILED"
        )
        assert refused.details == {"field": field}


async def test_balance_now_and_as_of_past_instants(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    clock = grpc_api.clock
    t0 = clock.now()
    await _post(stub, pay("k1", "bank", "alice", 100))
    t1 = clock.advance(timedelta(minutes=1))
    hold = await _post(stub, transfer("k2", leg("alice", "bob", 30), hold=True))
    await _post(stub, pay("k3", "alice", "bob", 5))  # the same instant as the hold
    t2 = clock.advance(timedelta(minutes=1))
    await stub.CapturePending(pb.CapturePendingRequest(ledger=L, transfer=hold.id, amount=10))
    clock.advance(timedelta(minutes=1))
    tiny = timedelta(microseconds=1)

    async def as_of(account: str, at: datetime) -> pb.Balance:
        stamp = ts(at)
        found = await stub.GetBalance(pb.GetBalanceRequest(ledger=L, account=account, as_of=stamp))
        assert (found.ledger, found.account, found.asset, found.as_of) == (L, account, USD, stamp)
        return found.balance

    assert await as_of("alice", t0 - tiny) == balance(available=0)
    assert await as_of("alice", t0) == balance(0, 100, available=100)
    assert await as_of("alice", t1 - tiny) == balance(0, 100, available=100)
    assert await as_of("alice", t1) == balance(5, 100, 30, available=65)
    assert await as_of("alice", t2 - tiny) == balance(5, 100, 30, available=65)
    assert await as_of("alice", t2) == balance(15, 100, available=85)
    assert await as_of("bob", t1) == balance(0, 5, 0, 30, available=5)
    assert await as_of("bob", t2) == balance(0, 15, available=15)
    assert await as_of("bank", t2 + timedelta(days=3650)) == balance(100, available=-100)
    now = await stub.GetBalance(pb.GetBalanceRequest(ledger=L, account="alice"))
    assert now.balance == balance(15, 100, available=85)
    assert not now.HasField("as_of")


async def test_list_entries_pages_through_a_statement(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    posted = [await _post(stub, pay(f"k{n}", "bank", "alice", n)) for n in range(1, 8)]

    statement: list[pb.Entry] = []
    sizes: list[int] = []
    token = ""
    while True:
        page = await stub.ListEntries(
            pb.ListEntriesRequest(ledger=L, account="alice", page_size=3, page_token=token)
        )
        statement.extend(page.entries)
        sizes.append(len(page.entries))
        token = page.next_page_token
        if not token:
            break

    assert sizes == [3, 3, 1]
    assert [e.sequence for e in statement] == list(range(1, 8))
    running = 0
    for entry, source in zip(statement, posted, strict=True):
        running += source.legs[0].amount
        assert (entry.account, entry.transfer_id, entry.transfer_sequence, entry.leg_index) == (
            "alice",
            source.id,
            source.sequence,
            0,
        )
        assert (entry.side, entry.layer, entry.amount) == (
            pb.Entry.CREDIT,
            pb.Entry.POSTED,
            source.legs[0].amount,
        )
        assert entry.balance_after == balance(0, running, available=running)
        assert entry.created_at == source.created_at
    bank = await all_entries(stub, L, "bank", page_size=1000)
    assert [(e.side, e.amount) for e in bank] == [(pb.Entry.DEBIT, n) for n in range(1, 8)]
    assert bank[-1].balance_after == balance(28, available=-28)
    exact = await stub.ListEntries(pb.ListEntriesRequest(ledger=L, account="alice", page_size=7))
    assert (len(exact.entries), exact.next_page_token) == (7, "")
    assert await all_entries(stub, L, "bob") == []


async def test_export_streams_every_entry_in_order_across_server_pages(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    for start in range(0, MORE_THAN_A_PAGE, BATCH):
        batch = [
            pay(f"k{n}", "bank", "alice", n + 1)
            for n in range(start, min(start + BATCH, MORE_THAN_A_PAGE))
        ]
        response = await stub.PostTransfers(pb.PostTransfersRequest(ledger=L, transfers=batch))
        assert all(result.HasField("transfer") for result in response.results)

    async def export(account: str) -> list[pb.Entry]:
        request = pb.ExportStatementRequest(ledger=L, account=account)
        return [entry async for entry in stub.ExportStatement(request)]

    exported = await export("alice")

    assert [e.sequence for e in exported] == list(range(1, MORE_THAN_A_PAGE + 1))
    assert [e.amount for e in exported] == list(range(1, MORE_THAN_A_PAGE + 1))
    total = MORE_THAN_A_PAGE * (MORE_THAN_A_PAGE + 1) // 2
    assert exported[-1].balance_after == balance(0, total, available=total)
    assert exported == await all_entries(stub, L, "alice", page_size=1000)
    assert await export("bank") == await all_entries(stub, L, "bank", page_size=1000)
    assert await export("bob") == []


async def test_list_entries_in_a_time_range(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    t0 = grpc_api.clock.now()
    for n in range(4):  # alice's entries 1..4, a minute apart
        grpc_api.clock.advance(t0 + timedelta(minutes=n) - grpc_api.clock.now())
        await _post(stub, pay(f"k{n}", "bank", "alice", 1 + n))

    async def window(
        start: datetime | None = None, end: datetime | None = None, page_size: int = 0
    ) -> list[list[int]]:
        pages: list[list[int]] = []
        token = ""
        while True:
            page = await stub.ListEntries(
                pb.ListEntriesRequest(
                    ledger=L,
                    account="alice",
                    start_time=None if start is None else ts(start),
                    end_time=None if end is None else ts(end),
                    page_size=page_size,
                    page_token=token,
                )
            )
            pages.append([entry.sequence for entry in page.entries])
            token = page.next_page_token
            if not token:
                return pages

    minute = timedelta(minutes=1)
    assert await window(start=t0 + minute) == [[2, 3, 4]]
    assert await window(start=t0 + minute, end=t0 + 3 * minute) == [[2, 3]]
    assert await window(start=t0 + minute, page_size=2) == [[2, 3], [4]]
    assert await window(end=t0 + minute + timedelta(microseconds=1)) == [[1, 2]]
    assert await window(start=t0 + minute, end=t0 + minute) == [[]]
    swapped = await expect_error(
        stub.ListEntries(
            pb.ListEntriesRequest(
                ledger=L, account="alice", start_time=ts(t0 + minute), end_time=ts(t0)
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "VALIDATION_FAILED",
    )
    assert swapped.details == {"field": "end_time"}


async def test_a_cut_export_resumes_after_the_last_entry_received(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    for start in range(0, MORE_THAN_A_PAGE, BATCH):
        batch = [
            pay(f"k{n}", "bank", "alice", n + 1)
            for n in range(start, min(start + BATCH, MORE_THAN_A_PAGE))
        ]
        await stub.PostTransfers(pb.PostTransfersRequest(ledger=L, transfers=batch))
    whole = await all_entries(stub, L, "alice", page_size=1000)
    cut_at = 1_002  # inside the server's second page

    received: list[pb.Entry] = []
    call = stub.ExportStatement(pb.ExportStatementRequest(ledger=L, account="alice"))
    async for entry in call:
        received.append(entry)
        if len(received) == cut_at:
            call.cancel()  # the client gives up with the rest unread
            break
    last = received[-1].sequence
    resumed = stub.ExportStatement(
        pb.ExportStatementRequest(ledger=L, account="alice", after_sequence=last)
    )
    rest = [entry async for entry in resumed]

    assert len(rest) == MORE_THAN_A_PAGE - cut_at
    assert received + rest == whole  # nothing missed, nothing twice
    beyond = pb.ExportStatementRequest(ledger=L, account="alice", after_sequence=MORE_THAN_A_PAGE)
    assert [entry async for entry in stub.ExportStatement(beyond)] == []


# --- per-item decoding and sub-microsecond instants ------------------------------------------


async def test_a_malformed_asset_in_one_item_fails_only_that_item(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    batch = [
        pay("ok-1", "bank", "alice", 10),
        transfer("bad", leg("bank", "alice", 1, "USD")),
        pay("ok-2", "bank", "alice", 20),
    ]

    response = await stub.PostTransfers(pb.PostTransfersRequest(ledger=L, transfers=batch))

    assert [r.WhichOneof("outcome") for r in response.results] == ["transfer", "error", "transfer"]
    bad = response.results[1].error
    assert bad.code == "VALIDATION_FAILED"
    # The field is named by its path in the request, as the client wrote it.
    assert dict(bad.details) == {"field": "transfers[1].legs[0].asset"}
    assert bad.message.startswith("transfers[1].legs[0].asset: 'USD' is not of the form")
    # Failed items take no sequence number.
    assert [r.transfer.sequence for r in response.results if r.HasField("transfer")] == [1, 2]
    assert await _balance(stub, "alice") == balance(0, 30, available=30)


async def test_a_malformed_asset_fails_an_atomic_batch_like_any_failing_item(
    grpc_api: GrpcApi,
) -> None:
    stub = grpc_api.stub
    await _books(stub)
    accounts = ("bank", "alice", "bob")
    before = await ledger_state(stub, L, accounts)
    batch = [
        pay("ok-1", "bank", "alice", 10),
        pay("ok-2", "bank", "bob", 20),
        transfer("bad", leg("bank", "alice", 1, "usd/2")),
    ]

    response = await stub.PostTransfers(
        pb.PostTransfersRequest(ledger=L, transfers=batch, atomic=True)
    )

    assert [r.error.code for r in response.results] == [
        "BATCH_ABORTED",
        "BATCH_ABORTED",
        "VALIDATION_FAILED",
    ]
    assert dict(response.results[2].error.details) == {"field": "transfers[2].legs[0].asset"}
    assert await ledger_state(stub, L, accounts) == before
    # A single transfer names its own path too, and still fails the call.
    failed = await expect_error(
        _post(stub, transfer("bad", leg("bank", "alice", 1, "USD/x"))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "VALIDATION_FAILED",
    )
    assert failed.details == {"field": "transfer.legs[0].asset"}
    # An unknown ledger still fails the whole call, malformed items or not.
    await expect_error(
        stub.PostTransfers(pb.PostTransfersRequest(ledger="nope", transfers=batch[2:])),
        grpc.StatusCode.NOT_FOUND,
        "LEDGER_NOT_FOUND",
    )


def _shifted(stamp: Timestamp, nanos: int) -> Timestamp:
    shifted = Timestamp()
    shifted.FromNanoseconds(stamp.ToNanoseconds() + nanos)
    return shifted


async def test_time_bounds_finer_than_a_microsecond(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    posted = await _post(stub, pay("k", "bank", "alice", 1))

    async def listed(start: Timestamp | None = None, end: Timestamp | None = None) -> list[str]:
        request = pb.ListTransfersRequest(ledger=L, start_time=start, end_time=end)
        return [t.id for t in (await stub.ListTransfers(request)).transfers]

    # start_time is inclusive, end_time exclusive, to the nanosecond.
    for nanos, from_start, until_end in [(-1, [posted.id], []), (1, [], [posted.id])]:
        bound = _shifted(posted.created_at, nanos)
        assert await listed(start=bound) == from_start, nanos
        assert await listed(end=bound) == until_end, nanos
    assert await listed(start=posted.created_at) == [posted.id]
    assert await listed(end=posted.created_at) == []
    # In the last microsecond a datetime can hold: nothing starts after it, everything ends
    # before it.
    last = Timestamp(seconds=253_402_300_799, nanos=999_999_001)
    assert await listed(start=last) == []
    assert await listed(end=last) == [posted.id]
    assert await listed(start=posted.created_at, end=last) == [posted.id]


async def test_as_of_is_echoed_exactly(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    as_of = Timestamp(seconds=2_000_000_000, nanos=123_456_789)

    found = await stub.GetBalance(pb.GetBalanceRequest(ledger=L, account="alice", as_of=as_of))

    assert found.as_of == as_of
