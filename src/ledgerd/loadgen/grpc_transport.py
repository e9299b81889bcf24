"""The API over gRPC: grpc.aio with the generated ``ledgerd.v1`` stubs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar, cast

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from grpc_status import rpc_status

from ledgerd.loadgen.credentials import BearerHeader
from ledgerd.loadgen.transport import (
    AccountView,
    ApiError,
    EntryView,
    Page,
    PostOutcome,
    TransferOrder,
)
from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc

if TYPE_CHECKING:
    from ledgerd.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

R = TypeVar("R")

PAGE_SIZE = 1000
CONNECT_TIMEOUT_S = 10.0
# Each client gets a TCP connection of its own, as separate client machines would; without
# this, grpc-core shares one subchannel between channels to the same address.
_OWN_CONNECTION = (("grpc.use_local_subchannel_pool", 1),)
_HEALTH = health_pb2.HealthCheckRequest()
_HEALTH_CHECK = "/grpc.health.v1.Health/Check"


def error_code(error: grpc.aio.AioRpcError) -> str:
    """The ledgerd code from the status's ErrorInfo, else the gRPC status name."""
    try:
        status = rpc_status.from_call(cast("grpc.Call", error))
    except ValueError:  # a status whose rich details disagree with it: report the plain code
        status = None
    if status is not None:
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info) and info.reason:
                return info.reason
    return str(error.code().name)


class GrpcTransport:
    def __init__(
        self, address: str, timeout_s: float, authorization: BearerHeader | None = None
    ) -> None:
        self._address = address
        # Read at every call: the process's token keeper renews the token in place.
        self._authorization = authorization or BearerHeader()
        self._channel = grpc.aio.insecure_channel(address, options=_OWN_CONNECTION)
        self._stub: LedgerServiceAsyncStub = ledger_pb2_grpc.LedgerServiceStub(self._channel)
        # The health stub's type stubs declare no methods; a typed multi-callable instead.
        self._health_check: grpc.aio.UnaryUnaryMultiCallable[
            health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        ] = self._channel.unary_unary(
            _HEALTH_CHECK,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        self._timeout_s = timeout_s

    async def connect(self) -> None:
        # channel_ready() waits for as long as the server is away: bound it.
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await self._channel.channel_ready()
        except TimeoutError:
            raise ApiError("UNAVAILABLE", f"no gRPC server answered at {self._address}") from None

    async def close(self) -> None:
        await self._channel.close()

    async def post(self, ledger: str, orders: Sequence[TransferOrder]) -> PostOutcome:
        inputs = [_transfer_input(order) for order in orders]
        outcome = PostOutcome()
        try:
            if len(inputs) == 1:
                posted = await self._stub.PostTransfer(
                    pb.PostTransferRequest(ledger=ledger, transfer=inputs[0]),
                    timeout=self._timeout_s,
                    metadata=self._authorization.grpc_metadata,
                )
                outcome.ids.append(posted.id)
                return outcome
            response = await self._stub.PostTransfers(
                pb.PostTransfersRequest(ledger=ledger, transfers=inputs, atomic=False),
                timeout=self._timeout_s,
                metadata=self._authorization.grpc_metadata,
            )
        except grpc.aio.AioRpcError as error:
            outcome.errors.extend([error_code(error)] * len(inputs))
            return outcome
        for result in response.results:
            if result.HasField("transfer"):
                outcome.ids.append(result.transfer.id)
                outcome.replayed += result.replayed
            else:
                outcome.errors.append(result.error.code or "UNKNOWN")
        if len(response.results) != len(inputs):  # a broken server; count the gap as failures
            outcome.errors.extend(["MISSING_RESULT"] * (len(inputs) - len(response.results)))
        return outcome

    async def ping(self) -> str | None:
        try:
            await self._health_check(_HEALTH, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as error:
            return error_code(error)
        return None

    async def create_ledger(self, ledger: str) -> None:
        request = pb.CreateLedgerRequest(id=ledger, name=ledger)
        await self._call(
            self._stub.CreateLedger(
                request, timeout=self._timeout_s, metadata=self._authorization.grpc_metadata
            )
        )

    async def create_account(self, ledger: str, account: str, asset: str) -> None:
        request = pb.CreateAccountRequest(ledger=ledger, id=account, asset=asset)
        await self._call(
            self._stub.CreateAccount(
                request, timeout=self._timeout_s, metadata=self._authorization.grpc_metadata
            )
        )

    async def list_accounts(self, ledger: str, token: str) -> Page[AccountView]:
        request = pb.ListAccountsRequest(ledger=ledger, page_size=PAGE_SIZE, page_token=token)
        page = await self._call(
            self._stub.ListAccounts(
                request, timeout=self._timeout_s, metadata=self._authorization.grpc_metadata
            )
        )
        return Page([_account_view(item) for item in page.accounts], page.next_page_token)

    async def list_transfer_ids(self, ledger: str, token: str, since: datetime | None) -> Page[str]:
        request = pb.ListTransfersRequest(ledger=ledger, page_size=PAGE_SIZE, page_token=token)
        if since is not None:
            stamp = Timestamp()
            stamp.FromDatetime(since.astimezone(UTC))
            request.start_time.CopyFrom(stamp)
        page = await self._call(
            self._stub.ListTransfers(
                request, timeout=self._timeout_s, metadata=self._authorization.grpc_metadata
            )
        )
        return Page([item.id for item in page.transfers], page.next_page_token)

    async def list_entries(self, ledger: str, account: str, token: str) -> Page[EntryView]:
        request = pb.ListEntriesRequest(
            ledger=ledger, account=account, page_size=PAGE_SIZE, page_token=token
        )
        page = await self._call(
            self._stub.ListEntries(
                request, timeout=self._timeout_s, metadata=self._authorization.grpc_metadata
            )
        )
        return Page(
            [
                EntryView(
                    side=pb.Entry.Side.Name(item.side),
                    layer=pb.Entry.Layer.Name(item.layer),
                    amount=item.amount,
                )
                for item in page.entries
            ],
            page.next_page_token,
        )

    @staticmethod
    async def _call(call: Awaitable[R]) -> R:
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            raise ApiError(error_code(error), error.details() or "") from error


def _transfer_input(order: TransferOrder) -> pb.TransferInput:
    move = order.movement
    return pb.TransferInput(
        idempotency_key=order.key,
        legs=[pb.Leg(debit_account=move.debit, credit_account=move.credit, amount=move.amount)],
    )


def _account_view(account: pb.Account) -> AccountView:
    balance = account.balance
    return AccountView(
        id=account.id,
        asset=account.asset,
        posted_debits=balance.posted_debits,
        posted_credits=balance.posted_credits,
        pending_debits=balance.pending_debits,
        pending_credits=balance.pending_credits,
    )
