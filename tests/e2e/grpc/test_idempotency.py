"""Idempotency keys over gRPC: a replay returns the original transfer, another body conflicts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from ledgerd.v1 import ledger_pb2 as pb
from tests.e2e.grpc.conftest import GrpcApi
from tests.e2e.grpc.support import balance, expect_error, ledger_state, leg, pay, transfer

if TYPE_CHECKING:
    from ledgerd.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

L = "idem"
CONFLICT = (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_CONFLICT")


async def _books(stub: LedgerServiceAsyncStub, ledger: str = L) -> None:
    await stub.CreateLedger(pb.CreateLedgerRequest(id=ledger))
    for account in ("bank", "alice"):
        await stub.CreateAccount(pb.CreateAccountRequest(ledger=ledger, id=account, asset="USD/2"))
    await stub.CreateAccount(
        pb.CreateAccountRequest(
            ledger=ledger,
            id="bob",
            asset="USD/2",
            flags=pb.AccountFlags(debits_must_not_exceed_credits=True),
        )
    )


def _post(message: pb.TransferInput, ledger: str = L) -> pb.PostTransferRequest:
    return pb.PostTransferRequest(ledger=ledger, transfer=message)


async def test_a_replay_returns_the_original_transfer(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    message = transfer("order-1", leg("bank", "alice", 250), metadata={"order": "1"})

    original = await stub.PostTransfer(_post(message))
    replayed = await stub.PostTransfer(_post(message))
    in_a_batch = await stub.PostTransfers(pb.PostTransfersRequest(ledger=L, transfers=[message]))

    assert replayed == original
    (result,) = in_a_batch.results
    assert (result.transfer, result.replayed) == (original, True)
    balance_now = await stub.GetBalance(pb.GetBalanceRequest(ledger=L, account="alice"))
    assert balance_now.balance == balance(0, 250, available=250)
    listing = await stub.ListTransfers(pb.ListTransfersRequest(ledger=L))
    assert list(listing.transfers) == [original]


async def test_a_key_reused_with_another_body_conflicts(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    original = await stub.PostTransfer(_post(pay("order-1", "bank", "alice", 250)))
    before = await ledger_state(stub, L, ("bank", "alice", "bob"))

    for changed in (
        pay("order-1", "bank", "alice", 251),
        pay("order-1", "bank", "bob", 250),
        transfer("order-1", leg("bank", "alice", 250), metadata={"note": "x"}),
        transfer("order-1", leg("bank", "alice", 250, "USD/2")),
        transfer("order-1", leg("bank", "alice", 250), hold=True),
    ):
        failed = await expect_error(stub.PostTransfer(_post(changed)), *CONFLICT)
        assert failed.details == {"idempotency_key": "order-1", "transfer_id": original.id}

    # The same goes for captures, voids and reversals, whose default keys are derived.
    hold = await stub.PostTransfer(_post(transfer("h", leg("bank", "alice", 90), hold=True)))
    await stub.CapturePending(pb.CapturePendingRequest(ledger=L, transfer=hold.id, amount=40))
    partial_again = pb.CapturePendingRequest(ledger=L, transfer=hold.id, amount=50)
    await expect_error(stub.CapturePending(partial_again), *CONFLICT)
    reused = pb.ReverseTransferRequest(ledger=L, transfer=original.id, idempotency_key="h")
    await expect_error(stub.ReverseTransfer(reused), *CONFLICT)
    after = await ledger_state(stub, L, ("bank", "alice", "bob"))
    assert after.transfers[: len(before.transfers)] == before.transfers
    assert len(after.transfers) == len(before.transfers) + 2  # the hold and its capture


async def test_only_accepted_requests_are_remembered(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    spend = _post(pay("spend", "bob", "alice", 100))

    await expect_error(
        stub.PostTransfer(spend), grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS"
    )
    await stub.PostTransfer(_post(pay("fund", "bank", "bob", 100)))
    posted = await stub.PostTransfer(spend)

    assert posted.idempotency_key == "spend"
    assert await stub.PostTransfer(spend) == posted


async def test_keys_are_scoped_by_ledger(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(stub)
    await _books(stub, "other")
    message = pay("same-key", "bank", "alice", 5)

    here = await stub.PostTransfer(_post(message))
    there = await stub.PostTransfer(_post(message, "other"))

    assert here.id != there.id
    assert (here.ledger, there.ledger) == (L, "other")
