"""UpdateAccountMetadata and BatchGetBalances over gRPC, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import grpc

from ledgerd.v1 import ledger_pb2 as pb
from tests.e2e.grpc.conftest import GrpcApi
from tests.e2e.grpc.support import balance, expect_error, pay, ts

L = "shop"
USD = "USD/2"


async def _books(api: GrpcApi) -> None:
    stub = api.stub
    await stub.CreateLedger(pb.CreateLedgerRequest(id=L, name="Shop"))
    for account, metadata in (("bank", {}), ("alice", {"tier": "gold", "n": "1"}), ("bob", {})):
        await stub.CreateAccount(
            pb.CreateAccountRequest(ledger=L, id=account, asset=USD, metadata=metadata)
        )


async def test_metadata_is_changed_at_the_version_read_and_listed_by_it(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(grpc_api)
    read = await stub.GetAccount(pb.GetAccountRequest(ledger=L, account="alice"))

    updated = await stub.UpdateAccountMetadata(
        pb.UpdateAccountMetadataRequest(
            ledger=L,
            account="alice",
            metadata={"tier": "silver", "owner": "ops"},
            remove_keys=["n", "absent"],
            expected_version=read.version,
        )
    )
    stale = await expect_error(
        stub.UpdateAccountMetadata(
            pb.UpdateAccountMetadataRequest(
                ledger=L, account="alice", metadata={"tier": "x"}, expected_version=read.version
            )
        ),
        grpc.StatusCode.ABORTED,
        "CONCURRENCY_CONFLICT",
    )
    unchanged = await stub.UpdateAccountMetadata(
        pb.UpdateAccountMetadataRequest(ledger=L, account="alice", metadata={"owner": "ops"})
    )
    listed = await stub.ListAccounts(pb.ListAccountsRequest(ledger=L, metadata=["tier=silver"]))

    assert dict(updated.metadata) == {"tier": "silver", "owner": "ops"}
    assert updated.version == read.version + 1
    assert stale.details == {
        "account": "alice",
        "expected_version": str(read.version),
        "actual_version": str(updated.version),
    }
    assert unchanged == updated  # nothing to change: same version
    assert [account.id for account in listed.accounts] == ["alice"]
    assert listed.accounts[0] == updated


async def test_balances_of_many_accounts_in_the_order_asked(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await _books(grpc_api)
    await stub.PostTransfer(pb.PostTransferRequest(ledger=L, transfer=pay("p1", "bank", "bob", 70)))
    before = ts(grpc_api.clock.advance(timedelta(seconds=1)))
    grpc_api.clock.advance(timedelta(seconds=1))
    await stub.PostTransfer(
        pb.PostTransferRequest(ledger=L, transfer=pay("p2", "bob", "alice", 20))
    )

    now = await stub.BatchGetBalances(
        pb.BatchGetBalancesRequest(ledger=L, accounts=["bob", "alice", "bob", "bank"])
    )
    then = await stub.BatchGetBalances(
        pb.BatchGetBalancesRequest(ledger=L, accounts=["alice", "bob"], as_of=before)
    )
    single = await stub.GetBalance(pb.GetBalanceRequest(ledger=L, account="bob", as_of=before))

    assert [(one.account, one.balance) for one in now.balances] == [
        ("bob", balance(20, 70, available=50)),
        ("alice", balance(0, 20, available=20)),
        ("bob", balance(20, 70, available=50)),
        ("bank", balance(70, 0, available=-70)),
    ]
    assert not any(one.HasField("as_of") for one in now.balances)
    assert list(then.balances) == [
        pb.AccountBalance(
            ledger=L, account="alice", asset=USD, balance=balance(available=0), as_of=before
        ),
        single,
    ]
    assert single.balance == balance(0, 70, available=70)
