"""The gRPC servicer of ``ledgerd.v1.LedgerService``: decode, call the use case, encode.

It raises domain errors as they come; each transport maps them to its statuses once, at the
edge of the request pipeline (platform/api/pipeline.py), so nothing here knows about them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from ledgerd.kernel.errors import validation_error
from ledgerd.kernel.result import Ok
from ledgerd.ledger.application.change_account_status import (
    ChangeAccountStatus,
    ChangeAccountStatusHandler,
)
from ledgerd.ledger.application.create_ledger import CreateLedger, CreateLedgerHandler
from ledgerd.ledger.application.open_account import OpenAccount, OpenAccountHandler
from ledgerd.ledger.application.post_transfers import (
    PostingResult,
    PostTransfers,
    TransferPoster,
)
from ledgerd.ledger.application.queries import LedgerQueries
from ledgerd.ledger.application.update_account_metadata import (
    UpdateAccountMetadata,
    UpdateAccountMetadataHandler,
)
from ledgerd.ledger.domain.model import AccountStatus, Side
from ledgerd.ledger.domain.requests import CaptureRequest, ReversalRequest, VoidRequest
from ledgerd.ledger.entrypoints.grpc import mapping
from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True, slots=True)
class LedgerUseCases:
    create_ledger: CreateLedgerHandler
    open_account: OpenAccountHandler
    change_status: ChangeAccountStatusHandler
    update_metadata: UpdateAccountMetadataHandler
    post: TransferPoster
    queries: LedgerQueries


def _key(text: str) -> str | None:
    # proto3 strings have no presence: empty means "not given", so the default key applies.
    return text or None


# Items converted between two pauses for other work: a batch of 10,000 transfers takes a
# few hundred ms to decode, and as long again to encode, which must not stall every other call.
_SLICE = 200

_In = TypeVar("_In")
_Out = TypeVar("_Out")


async def _in_slices(items: Sequence[_In], convert: Callable[[_In], _Out]) -> list[_Out]:
    converted: list[_Out] = []
    for start in range(0, len(items), _SLICE):
        if start:
            await asyncio.sleep(0)
        converted.extend(convert(item) for item in items[start : start + _SLICE])
    return converted


def _transfer_result(result: PostingResult) -> pb.TransferResult:
    if isinstance(result, Ok):
        return pb.TransferResult(
            transfer=mapping.transfer(result.value.transfer), replayed=result.value.replayed
        )
    return pb.TransferResult(error=mapping.error(result.error))


class LedgerService(ledger_pb2_grpc.LedgerServiceServicer):
    def __init__(self, use_cases: LedgerUseCases) -> None:
        self._u = use_cases

    async def CreateLedger(self, request: pb.CreateLedgerRequest, context: Context) -> pb.Ledger:
        ledger = await self._u.create_ledger(
            CreateLedger(request.id, request.name, dict(request.metadata))
        )
        return mapping.ledger(ledger)

    async def ListLedgers(
        self, request: pb.ListLedgersRequest, context: Context
    ) -> pb.ListLedgersResponse:
        page = await self._u.queries.list_ledgers(
            cursor=request.page_token or None, limit=request.page_size or None
        )
        return pb.ListLedgersResponse(
            ledgers=[mapping.ledger(ledger) for ledger in page.items],
            next_page_token=page.next_cursor or "",
        )

    async def GetLedger(self, request: pb.GetLedgerRequest, context: Context) -> pb.Ledger:
        return mapping.ledger(await self._u.queries.get_ledger(request.ledger))

    async def CreateAccount(self, request: pb.CreateAccountRequest, context: Context) -> pb.Account:
        account = await self._u.open_account(
            OpenAccount(
                request.ledger,
                request.id,
                mapping.asset(request.asset, "asset"),
                mapping.flags(request.flags),
                dict(request.metadata),
            )
        )
        return mapping.account(account)

    async def GetAccount(self, request: pb.GetAccountRequest, context: Context) -> pb.Account:
        return mapping.account(await self._u.queries.get_account(request.ledger, request.account))

    async def ListAccounts(
        self, request: pb.ListAccountsRequest, context: Context
    ) -> pb.ListAccountsResponse:
        page = await self._u.queries.list_accounts(
            request.ledger,
            metadata=mapping.metadata_filter(request.metadata),
            cursor=request.page_token or None,
            limit=request.page_size or None,
        )
        return pb.ListAccountsResponse(
            accounts=[mapping.account(account) for account in page.items],
            next_page_token=page.next_cursor or "",
        )

    async def UpdateAccountMetadata(
        self, request: pb.UpdateAccountMetadataRequest, context: Context
    ) -> pb.Account:
        account = await self._u.update_metadata(
            UpdateAccountMetadata(
                request.ledger,
                request.account,
                dict(request.metadata),
                tuple(request.remove_keys),
                request.expected_version if request.HasField("expected_version") else None,
            )
        )
        return mapping.account(account)

    async def _set_status(
        self, request: pb.AccountStatusRequest, status: AccountStatus
    ) -> pb.Account:
        account = await self._u.change_status(
            ChangeAccountStatus(request.ledger, request.account, status)
        )
        return mapping.account(account)

    async def FreezeAccount(self, request: pb.AccountStatusRequest, context: Context) -> pb.Account:
        return await self._set_status(request, AccountStatus.FROZEN)

    async def UnfreezeAccount(
        self, request: pb.AccountStatusRequest, context: Context
    ) -> pb.Account:
        return await self._set_status(request, AccountStatus.OPEN)

    async def CloseAccount(self, request: pb.AccountStatusRequest, context: Context) -> pb.Account:
        return await self._set_status(request, AccountStatus.CLOSED)

    async def PostTransfer(self, request: pb.PostTransferRequest, context: Context) -> pb.Transfer:
        if not request.HasField("transfer"):
            raise validation_error("transfer", "is required")
        posted = await self._u.post.post_one(
            request.ledger, mapping.transfer_request(request.transfer)
        )
        return mapping.transfer(posted.transfer)

    async def PostTransfers(
        self, request: pb.PostTransfersRequest, context: Context
    ) -> pb.PostTransfersResponse:
        requests = await _in_slices(
            list(enumerate(request.transfers)),
            lambda pair: mapping.batch_item(pair[1], f"transfers[{pair[0]}]"),
        )
        results = await self._u.post(PostTransfers(request.ledger, requests, request.atomic))
        return pb.PostTransfersResponse(results=await _in_slices(results, _transfer_result))

    async def GetTransfer(self, request: pb.GetTransferRequest, context: Context) -> pb.Transfer:
        transfer = await self._u.queries.get_transfer(request.ledger, request.transfer)
        return mapping.transfer(transfer)

    async def GetTransferByKey(
        self, request: pb.GetTransferByKeyRequest, context: Context
    ) -> pb.Transfer:
        transfer = await self._u.queries.get_transfer_by_key(
            request.ledger, request.idempotency_key
        )
        return mapping.transfer(transfer)

    async def ListTransfers(
        self, request: pb.ListTransfersRequest, context: Context
    ) -> pb.ListTransfersResponse:
        start, end = mapping.creation_range(request)
        page = await self._u.queries.list_transfers(
            request.ledger,
            account_id=request.account or None,
            start=start,
            end=end,
            kind=mapping.transfer_kind(request.kind),
            status=mapping.transfer_status(request.status),
            cursor=request.page_token or None,
            limit=request.page_size or None,
        )
        return pb.ListTransfersResponse(
            transfers=[mapping.transfer(transfer) for transfer in page.items],
            next_page_token=page.next_cursor or "",
        )

    async def CapturePending(
        self, request: pb.CapturePendingRequest, context: Context
    ) -> pb.Transfer:
        capture = CaptureRequest(
            request.transfer,
            amount=request.amount if request.HasField("amount") else None,
            idempotency_key=_key(request.idempotency_key),
            metadata=dict(request.metadata),
        )
        return mapping.transfer((await self._u.post.post_one(request.ledger, capture)).transfer)

    async def VoidPending(self, request: pb.VoidPendingRequest, context: Context) -> pb.Transfer:
        void = VoidRequest(
            request.transfer,
            idempotency_key=_key(request.idempotency_key),
            metadata=dict(request.metadata),
        )
        return mapping.transfer((await self._u.post.post_one(request.ledger, void)).transfer)

    async def ReverseTransfer(
        self, request: pb.ReverseTransferRequest, context: Context
    ) -> pb.Transfer:
        reversal = ReversalRequest(
            request.transfer,
            idempotency_key=_key(request.idempotency_key),
            metadata=dict(request.metadata),
        )
        return mapping.transfer((await self._u.post.post_one(request.ledger, reversal)).transfer)

    async def GetBalance(
        self, request: pb.GetBalanceRequest, context: Context
    ) -> pb.AccountBalance:
        stamp = request.as_of if request.HasField("as_of") else None
        as_of = None if stamp is None else mapping.instant(stamp, "as_of")
        found = await self._u.queries.get_balance(request.ledger, request.account, as_of)
        return mapping.account_balance(found, stamp)

    async def BatchGetBalances(
        self, request: pb.BatchGetBalancesRequest, context: Context
    ) -> pb.BatchGetBalancesResponse:
        stamp = request.as_of if request.HasField("as_of") else None
        as_of = None if stamp is None else mapping.instant(stamp, "as_of")
        found = await self._u.queries.get_balances(request.ledger, list(request.accounts), as_of)
        return pb.BatchGetBalancesResponse(
            balances=[mapping.account_balance(one, stamp) for one in found]
        )

    async def ListEntries(
        self, request: pb.ListEntriesRequest, context: Context
    ) -> pb.ListEntriesResponse:
        start, end = mapping.creation_range(request)
        page = await self._u.queries.list_entries(
            request.ledger,
            request.account,
            start=start,
            end=end,
            cursor=request.page_token or None,
            limit=request.page_size or None,
        )
        # After the listing, which checks the request first: a bad one gets its own error.
        account = await self._u.queries.get_account(request.ledger, request.account)
        return pb.ListEntriesResponse(
            entries=[mapping.entry(entry, account.normal_side) for entry in page.items],
            next_page_token=page.next_cursor or "",
        )

    async def ExportStatement(
        self, request: pb.ExportStatementRequest, context: Context
    ) -> AsyncIterator[pb.Entry]:
        entries = self._u.queries.export_entries(
            request.ledger, request.account, after_sequence=request.after_sequence
        )
        normal_side: Side | None = None
        async for entry in entries:
            if normal_side is None:
                # Read once the export has checked the whole request (after_sequence too) and
                # found the account, so that a bad request gets its own error first.
                account = await self._u.queries.get_account(request.ledger, request.account)
                normal_side = account.normal_side
            yield mapping.entry(entry, normal_side)
