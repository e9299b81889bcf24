"""A client's deadline over gRPC (row 1.3): the server stops the call and its database wait.

The test holds a lock every posting needs (the ledger's chain head), so the call is still
waiting in the database when its deadline passes, with no sleep anywhere in the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledgerd.v1 import ledger_pb2 as pb
from tests.e2e.grpc.conftest import GrpcApi
from tests.e2e.grpc.support import ledger_state, pay

L = "L"
ACCOUNTS = ("bank", "alice")
ACCESS_LOG = "ledgerd.access"
# The client's deadline: long enough for the call to reach its lock wait, which the test
# checks before the deadline can matter.
DEADLINE_S = 1.0
# Upper bounds for waiting on the server; a healthy run takes a fraction of them.
WAIT_LIMIT_S = 30.0
# How long the server may take to end a call once its deadline has passed, on SQLite: well
# under the 30 s busy timeout it would otherwise wait for.
STOP_LIMIT_S = 5.0


async def _books(api: GrpcApi) -> None:
    await api.stub.CreateLedger(pb.CreateLedgerRequest(id=L))
    for account in ACCOUNTS:
        await api.stub.CreateAccount(pb.CreateAccountRequest(ledger=L, id=account, asset="USD/2"))


@asynccontextmanager
async def _holding_the_chain_head(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """Lock ledger ``L``'s row until the block ends: on PostgreSQL the row, on SQLite the file."""
    async with engine.connect() as blocker:
        if engine.dialect.name == "postgresql":
            await blocker.execute(
                text("SELECT id FROM ledgers WHERE id = :id FOR UPDATE"), {"id": L}
            )
        else:
            # The engine begins SQLite transactions IMMEDIATE: this holds the write lock.
            await blocker.execute(text("UPDATE ledgers SET name = name WHERE id = :id"), {"id": L})
        try:
            yield blocker
        finally:
            await blocker.rollback()


async def _lock_waiters(engine: AsyncEngine) -> int:
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with engine.connect() as connection:
        return int((await connection.execute(query)).scalar_one())


async def _until_lock_waiters(engine: AsyncEngine, count: int) -> None:
    async with asyncio.timeout(WAIT_LIMIT_S):
        while True:
            if await _lock_waiters(engine) == count:
                return
            await asyncio.sleep(0.02)


def _logged(caplog: pytest.LogCaptureFixture, request_id: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == ACCESS_LOG and f"request_id={request_id}" in record.getMessage()
    ]


async def _until_logged(caplog: pytest.LogCaptureFixture, request_id: str, limit: float) -> str:
    """The server's access-log line for the call: written when the server is done with it."""
    async with asyncio.timeout(limit):
        while True:
            lines = _logged(caplog, request_id)
            if lines:
                (line,) = lines
                return line
            await asyncio.sleep(0.02)


def _slow_post(api: GrpcApi, request_id: str) -> asyncio.Future[pb.Transfer]:
    return asyncio.ensure_future(
        api.stub.PostTransfer(
            pb.PostTransferRequest(ledger=L, transfer=pay("slow", "bank", "alice", 5)),
            timeout=DEADLINE_S,
            metadata=(("x-request-id", request_id),),
        )
    )


async def _timed_out_on_postgres(
    api: GrpcApi, caplog: pytest.LogCaptureFixture, request_id: str
) -> str:
    """Post while the head is locked, let the deadline pass; the server's access-log line."""
    engine = api.app.engine
    caplog.set_level(logging.INFO, logger=ACCESS_LOG)
    await _books(api)
    before = await ledger_state(api.stub, L, ACCOUNTS)
    async with _holding_the_chain_head(engine):
        call = _slow_post(api, request_id)
        await _until_lock_waiters(engine, 1)  # the call is in the database, waiting
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # The lock is still held, yet nobody waits for it any more: the query was cancelled.
        await _until_lock_waiters(engine, 0)
        line = await _until_logged(caplog, request_id, WAIT_LIMIT_S)
    # Nothing was written, then or once the lock was free.
    assert await ledger_state(api.stub, L, ACCOUNTS) == before
    return line


async def test_a_client_deadline_cancels_the_call_and_its_database_wait(
    postgres_grpc_api: GrpcApi, caplog: pytest.LogCaptureFixture
) -> None:
    line = await _timed_out_on_postgres(postgres_grpc_api, caplog, "deadline-1")

    assert "/ledgerd.v1.LedgerService/PostTransfer" in line
    # The access log tells the truth about the call: it did not succeed.
    assert " OK " not in line, line


async def test_a_client_deadline_stops_a_call_waiting_for_the_sqlite_write_lock(
    sqlite_grpc_api: GrpcApi, caplog: pytest.LogCaptureFixture
) -> None:
    """The write lock's wait must end at the deadline, not after SQLite's 30 s busy timeout.

    SQLite waits for its write lock in a busy handler that no task cancellation reaches.
    """
    api = sqlite_grpc_api
    caplog.set_level(logging.INFO, logger=ACCESS_LOG)
    await _books(api)
    before = await ledger_state(api.stub, L, ACCOUNTS)
    async with _holding_the_chain_head(api.app.engine):
        call = _slow_post(api, "deadline-3")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # The server is done with the call (it logs it) while the lock is still held.
        line = await _until_logged(caplog, "deadline-3", STOP_LIMIT_S)
    assert " OK " not in line, line
    assert await ledger_state(api.stub, L, ACCOUNTS) == before
