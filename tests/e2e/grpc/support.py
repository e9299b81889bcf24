"""What the gRPC end-to-end tests share: message builders, error decoding, state snapshots.

Everything here talks to the server through the generated client only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from ledgerd.v1 import ledger_pb2 as pb

if TYPE_CHECKING:
    from ledgerd.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

ERROR_DOMAIN = "ledgerd"
REQUEST_ID = "x-request-id"


def ts(instant: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(instant.astimezone(UTC))
    return stamp


def instant(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def leg(debit: str, credit: str, amount: int, asset: str = "") -> pb.Leg:
    return pb.Leg(debit_account=debit, credit_account=credit, amount=amount, asset=asset)


def transfer(
    key: str,
    *legs: pb.Leg,
    hold: bool = False,
    timeout_s: int = 0,
    metadata: dict[str, str] | None = None,
) -> pb.TransferInput:
    message = pb.TransferInput(idempotency_key=key, legs=legs, metadata=metadata or {})
    if hold:
        message.pending.CopyFrom(pb.PendingOptions(timeout_seconds=timeout_s))
    return message


def pay(key: str, debit: str, credit: str, amount: int) -> pb.TransferInput:
    return transfer(key, leg(debit, credit, amount))


def balance(
    posted_debits: int = 0,
    posted_credits: int = 0,
    pending_debits: int = 0,
    pending_credits: int = 0,
    *,
    available: int,
) -> pb.Balance:
    return pb.Balance(
        posted_debits=posted_debits,
        posted_credits=posted_credits,
        pending_debits=pending_debits,
        pending_credits=pending_credits,
        available=available,
    )


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed call as a client sees it: status, message, ErrorInfo and trailing metadata."""

    status: grpc.StatusCode
    message: str
    reason: str
    domain: str
    details: dict[str, str]
    trailing: dict[str, str]


def decode(error: grpc.aio.AioRpcError) -> Failure:
    """The status of a failed call, with the ErrorInfo it must carry."""
    # rpc_status.from_call reads code(), details() and trailing_metadata(), which
    # AioRpcError offers synchronously; it also checks they agree with the rich status.
    status = rpc_status.from_call(cast("grpc.Call", error))
    assert isinstance(status, status_pb2.Status), f"no google.rpc.Status in {error!r}"
    assert status.code == error.code().value[0]
    infos = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            infos.append(info)
    assert len(infos) == 1, status
    (info,) = infos
    trailing = {
        key: value
        for key, value in (error.trailing_metadata() or ())
        if isinstance(value, str)  # the rich status itself travels as -bin bytes
    }
    return Failure(
        status=error.code(),
        message=status.message,
        reason=info.reason,
        domain=info.domain,
        details=dict(info.metadata),
        trailing=trailing,
    )


async def failure(call: Awaitable[object]) -> Failure:
    """Await ``call``, which must fail with a ledgerd error; return how it failed."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return decode(caught.value)


async def expect_error(call: Awaitable[object], status: grpc.StatusCode, reason: str) -> Failure:
    failed = await failure(call)
    assert (failed.status, failed.reason, failed.domain) == (status, reason, ERROR_DOMAIN), failed
    return failed


# --- reading whole listings ------------------------------------------------------------------


async def all_entries(
    stub: LedgerServiceAsyncStub, ledger: str, account: str, page_size: int = 0
) -> list[pb.Entry]:
    entries: list[pb.Entry] = []
    token = ""
    while True:
        page = await stub.ListEntries(
            pb.ListEntriesRequest(
                ledger=ledger, account=account, page_size=page_size, page_token=token
            )
        )
        entries.extend(page.entries)
        token = page.next_page_token
        if not token:
            return entries


async def all_transfers(
    stub: LedgerServiceAsyncStub, request: pb.ListTransfersRequest
) -> list[list[pb.Transfer]]:
    """Every page of a transfer listing, as pages."""
    pages: list[list[pb.Transfer]] = []
    query = pb.ListTransfersRequest()
    query.CopyFrom(request)
    while True:
        page = await stub.ListTransfers(query)
        pages.append(list(page.transfers))
        if not page.next_page_token:
            return pages
        query.page_token = page.next_page_token


@dataclass(frozen=True, slots=True)
class LedgerState:
    """Everything the API shows about a ledger's accounts and transfers."""

    ledger: pb.Ledger
    accounts: list[pb.Account]
    balances: list[pb.AccountBalance]
    entries: dict[str, list[pb.Entry]]
    transfers: list[pb.Transfer]


async def ledger_state(
    stub: LedgerServiceAsyncStub, ledger: str, accounts: Sequence[str]
) -> LedgerState:
    """Read it all, concurrently: every read is its own snapshot, and nothing is writing."""
    header, listed, balances, entries, pages = await asyncio.gather(
        stub.GetLedger(pb.GetLedgerRequest(ledger=ledger)),
        stub.ListAccounts(pb.ListAccountsRequest(ledger=ledger, page_size=1000)),
        asyncio.gather(
            *(stub.GetBalance(pb.GetBalanceRequest(ledger=ledger, account=a)) for a in accounts)
        ),
        asyncio.gather(*(all_entries(stub, ledger, a) for a in accounts)),
        all_transfers(stub, pb.ListTransfersRequest(ledger=ledger, page_size=1000)),
    )
    assert not listed.next_page_token
    return LedgerState(
        ledger=header,
        accounts=list(listed.accounts),
        balances=list(balances),
        entries=dict(zip(accounts, entries, strict=True)),
        transfers=[item for page in pages for item in page],
    )
