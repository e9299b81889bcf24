"""A full posting queue refuses at once with OVERLOADED and a retry hint, over both transports.

The server runs with a tiny queue (2 calls) and one batch worker. A separate connection holds
``FOR UPDATE`` on an account the postings must lock, so the first posting's batch waits on it;
the next calls fill the queue, and the one after is refused — 429 with ``Retry-After`` over
REST, RESOURCE_EXHAUSTED with ErrorInfo and RetryInfo over gRPC. Once the lock is released,
every accepted call is posted and nothing of the refused ones is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import asyncpg
import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy.engine import make_url

from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc
from tests.e2e.rest.support import Ledger, RestApi, ok, pay, problem, serve_rest

T = TypeVar("T")
L = "busy"
QUEUE = 2
# Calls the batcher holds beyond its queue, with one worker: the group being posted (one call
# here); the rest wait in the queue.
IN_HAND = 1
RETRY_AFTER_S = 0.05  # the batcher's default hint
# A call still unanswered after this long is taken to be queued behind the lock.
QUEUED_AFTER_S = 0.3
WAIT_S = 10.0


@asynccontextmanager
async def _locked(postgres_url: str, account: str) -> AsyncIterator[None]:
    dsn = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn, timeout=WAIT_S)
    try:
        async with connection.transaction():
            await connection.execute(
                "SELECT id FROM accounts WHERE ledger_id = $1 AND id = $2 FOR UPDATE", L, account
            )
            yield
    finally:
        await connection.close()


@pytest.fixture
async def busy(migrated_postgres_url: str) -> AsyncIterator[RestApi]:
    settings = {"batch_queue_capacity": QUEUE, "batch_workers": 1}
    async with serve_rest(migrated_postgres_url, settings=settings) as api:
        ledger = Ledger(api.client, L)
        await ledger.create()
        await ledger.open("bank")
        await ledger.open("alice")
        yield api


async def _fill_until_refused(
    call: Callable[[int], Awaitable[T]], refused: Callable[[T], bool]
) -> tuple[list[asyncio.Task[T]], T]:
    """Send calls one by one until one is refused; returns the accepted (pending) ones."""
    accepted: list[asyncio.Task[T]] = []
    for number in range(QUEUE + IN_HAND + 1):
        task = asyncio.ensure_future(call(number))
        done, _ = await asyncio.wait({task}, timeout=QUEUED_AFTER_S)
        if done and refused(task.result()):
            return accepted, task.result()
        assert not done, f"call {number} was answered while the lock was held: {task.result()}"
        accepted.append(task)
    pytest.fail(f"{len(accepted)} calls and none refused: the queue is not bounded")


async def test_rest_answers_429_with_retry_after_when_the_queue_is_full(
    busy: RestApi, migrated_postgres_url: str
) -> None:
    client = busy.client

    async def post(number: int) -> httpx.Response:
        return await client.post(
            f"/v1/ledgers/{L}/transfers", json=pay(f"rest-{number}", "bank", "alice", 1)
        )

    async with _locked(migrated_postgres_url, "alice"):
        accepted, refusal = await _fill_until_refused(post, lambda r: r.status_code == 429)
    body = problem(refusal, 429, "OVERLOADED")
    assert body["details"] == {"retry_after_seconds": f"{RETRY_AFTER_S:g}"}
    assert refusal.headers["retry-after"] == "1"
    # Those in hand and QUEUE waiting: exactly those are posted.
    assert len(accepted) == QUEUE + IN_HAND
    for response in await asyncio.gather(*accepted):
        assert ok(response)["status"] == "POSTED"
    keys = {t["idempotency_key"] for t in await Ledger(client, L).all_transfers()}
    assert keys == {f"rest-{n}" for n in range(QUEUE + IN_HAND)}


async def test_grpc_answers_resource_exhausted_with_retry_info_when_the_queue_is_full(
    busy: RestApi, migrated_postgres_url: str
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{busy.grpc_port}") as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)

        async def post(number: int) -> grpc.aio.AioRpcError | pb.Transfer:
            request = pb.PostTransferRequest(
                ledger=L,
                transfer=pb.TransferInput(
                    idempotency_key=f"grpc-{number}",
                    legs=[pb.Leg(debit_account="bank", credit_account="alice", amount=1)],
                ),
            )
            try:
                return await stub.PostTransfer(request, timeout=WAIT_S)
            except grpc.aio.AioRpcError as error:
                return error

        async with _locked(migrated_postgres_url, "alice"):
            accepted, refusal = await _fill_until_refused(
                post, lambda r: isinstance(r, grpc.aio.AioRpcError)
            )
        results = await asyncio.gather(*accepted)
    assert isinstance(refusal, grpc.aio.AioRpcError)
    assert refusal.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(refusal)  # type: ignore[arg-type]
    assert status is not None
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert status.details[1].Unpack(retry)
    assert info.reason == "OVERLOADED"
    assert retry.retry_delay.ToMilliseconds() == round(RETRY_AFTER_S * 1000)
    posted = [r.status for r in results if isinstance(r, pb.Transfer)]
    assert posted == [pb.Transfer.POSTED] * (QUEUE + IN_HAND)
