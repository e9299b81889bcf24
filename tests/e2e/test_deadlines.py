"""Row 1.3: a client's deadline stops the server's work, down to the database, leaving nothing.

On PostgreSQL a request is made slow for real: a separate connection holds ``SELECT ... FOR
UPDATE`` on an account the transfer must lock. Then the same transfer is sent with a 0.5 s
deadline four ways — REST with ``X-Request-Timeout``, REST with ``grpc-timeout``, gRPC with a
``timeout``, and REST through the gateway that forwards over gRPC — and each time:

- the client gets DEADLINE_EXCEEDED (HTTP 504 with that code, or the gRPC status);
- while the lock is still held, the server's statement is no longer waiting on it and no
  transaction of the server's is left open (the database work was cancelled);
- once the lock is released, nothing was written and the server still posts normally;
- no task is left behind in the event loop the servers run in.

The same must hold when a client gives up without a deadline: a gRPC client that cancels (it
does), and a REST client that closes its connection. Last, a
deadline that passes while a streamed export waits on a slow client (SQLite is enough there).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
import grpc
import httpx
import pytest
from sqlalchemy.engine import make_url

from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc
from tests.e2e.rest.support import (
    CLIENT_TIMEOUT_S,
    Ledger,
    RestApi,
    balance,
    leg,
    ok,
    pay,
    problem,
    serve_rest,
    transfer_input,
)

if TYPE_CHECKING:
    from ledgerd.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

L = "slow"
DEADLINE_S = 0.5
# Bounds on waiting for something that must happen; none is a measure of speed.
WAIT_S = 10.0
# ... and on the server settling once a call is abandoned: cancelling takes milliseconds.
SETTLE_S = 3.0
POLL_S = 0.01
# Server backends still busy: a statement running (or waiting on a lock), a transaction open.
_BUSY_STATES = ("active", "idle in transaction", "idle in transaction (aborted)")


@dataclass(frozen=True, slots=True)
class Slow:
    """The servers over PostgreSQL, a client for each way in, and how to reach the database."""

    api: RestApi
    in_process: httpx.AsyncClient
    forwarding: httpx.AsyncClient
    stub: LedgerServiceAsyncStub
    dsn: str
    # The gRPC server's listeners when it is idle: one per registered method.
    listeners: int


@pytest.fixture
async def slow(migrated_postgres_url: str) -> AsyncIterator[Slow]:
    async with serve_rest(migrated_postgres_url, forwarding=True) as api:
        listeners = sum(_is_listener(task) for task in asyncio.all_tasks())
        assert listeners > 0
        in_process, forwarding = (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=CLIENT_TIMEOUT_S)
            for server in api.http_servers
        )
        async with (
            in_process,
            forwarding,
            grpc.aio.insecure_channel(f"127.0.0.1:{api.grpc_port}") as channel,
        ):
            ledger = Ledger(in_process, L)
            await ledger.create()
            await ledger.open("bank")
            await ledger.open("alice", flags={"debits_must_not_exceed_credits": True})
            dsn = make_url(migrated_postgres_url).set(drivername="postgresql")
            yield Slow(
                api=api,
                in_process=in_process,
                forwarding=forwarding,
                stub=ledger_pb2_grpc.LedgerServiceStub(channel),
                dsn=dsn.render_as_string(hide_password=False),
                listeners=listeners,
            )


@asynccontextmanager
async def _row_locked(dsn: str, account: str) -> AsyncIterator[int]:
    """Hold ``FOR UPDATE`` on an account row from a connection of our own; yields its pid."""
    connection = await asyncpg.connect(dsn, timeout=WAIT_S)
    try:
        transaction = connection.transaction()
        await transaction.start()
        try:
            locked = await connection.fetchval(
                "SELECT id FROM accounts WHERE ledger_id = $1 AND id = $2 FOR UPDATE", L, account
            )
            assert locked == account
            yield connection.get_server_pid()
        finally:
            await transaction.rollback()
    finally:
        await connection.close()


async def _busy_backends(admin: asyncpg.Connection, locker: int) -> list[asyncpg.Record]:
    """The server's backends on this database that run a statement or hold a transaction."""
    return await admin.fetch(
        """
        SELECT pid, state, wait_event_type, query FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> $1
          AND state = ANY($2::text[])
        """,
        locker,
        list(_BUSY_STATES),
    )


async def _until(condition: Callable[[], Awaitable[bool]], bound: float = WAIT_S) -> None:
    """Wait until ``condition`` holds; TimeoutError after ``bound`` seconds."""
    async with asyncio.timeout(bound):
        # Polling: PostgreSQL's activity and the loop's tasks have no event to wait on.
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(POLL_S)


# The gRPC server's own long-lived tasks: one per registered method, waiting for its next call.
# Each call that arrives is handed off and a fresh one takes its place, so they are counted,
# not compared by identity.
_GRPC_LISTENER = "AioServer._request_registered_call"


def _is_listener(task: asyncio.Task[object]) -> bool:
    return getattr(task.get_coro(), "__qualname__", "") == _GRPC_LISTENER


def _running() -> set[asyncio.Task[object]]:
    current = asyncio.current_task()
    return {task for task in asyncio.all_tasks() if task is not current and not task.done()}


def _leftover(before: set[asyncio.Task[object]], listeners: int) -> list[asyncio.Task[object]]:
    """Tasks started since ``before`` still running, and any listener beyond ``listeners``."""
    running = _running()
    waiting = [task for task in running if _is_listener(task)]
    new = [task for task in running if task not in before and not _is_listener(task)]
    return new + waiting[listeners:]


async def _warm_up(slow: Slow, key: str) -> None:
    """One successful transfer each way in, so pools, channels and connections exist."""
    for index, client in enumerate((slow.in_process, slow.forwarding)):
        ok(
            await client.post(
                f"/v1/ledgers/{L}/transfers", json=pay(f"{key}-{index}", "bank", "alice", 1)
            )
        )
    await slow.stub.PostTransfer(
        pb.PostTransferRequest(
            ledger=L,
            transfer=pb.TransferInput(
                idempotency_key=f"{key}-grpc",
                legs=[pb.Leg(debit_account="bank", credit_account="alice", amount=1)],
            ),
        )
    )


SLOW_BODY = pay("too-slow", "bank", "alice", 7)


async def _rest_with_header(client: httpx.AsyncClient, header: str, value: str) -> None:
    response = await client.post(
        f"/v1/ledgers/{L}/transfers", json=SLOW_BODY, headers={header: value}
    )
    body = problem(response, 504, "DEADLINE_EXCEEDED")
    assert body["message"]


async def _x_request_timeout(slow: Slow) -> None:
    await _rest_with_header(slow.in_process, "X-Request-Timeout", str(DEADLINE_S))


async def _grpc_timeout_header(slow: Slow) -> None:
    await _rest_with_header(slow.in_process, "grpc-timeout", f"{round(DEADLINE_S * 1000)}m")


async def _forwarded(slow: Slow) -> None:
    await _rest_with_header(slow.forwarding, "X-Request-Timeout", str(DEADLINE_S))


async def _grpc(slow: Slow) -> None:
    request = pb.PostTransferRequest(
        ledger=L,
        transfer=pb.TransferInput(
            idempotency_key="too-slow",
            legs=[pb.Leg(debit_account="bank", credit_account="alice", amount=7)],
        ),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await slow.stub.PostTransfer(request, timeout=DEADLINE_S)
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


Call = Callable[[Slow], Coroutine[Any, Any, None]]
WAYS: dict[str, Call] = {
    "rest-x-request-timeout": _x_request_timeout,
    "rest-grpc-timeout": _grpc_timeout_header,
    "grpc-timeout": _grpc,
    "rest-forwarded-over-grpc": _forwarded,
}
Abandon = Callable[["asyncio.Task[None]"], Awaitable[None]]


async def _deadline_passes(call: asyncio.Task[None]) -> None:
    """The call ends by itself, with DEADLINE_EXCEEDED (which it checks)."""
    async with asyncio.timeout(WAIT_S):
        await call


async def _client_gives_up(call: asyncio.Task[None]) -> None:
    """The client cancels the call: a gRPC CANCEL, or a closed HTTP connection."""
    call.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await call


async def _work_stops(slow: Slow, call: Call, abandon: Abandon) -> None:
    """Send ``call`` while its account is locked, ``abandon`` it, and check what is left."""
    ledger = Ledger(slow.in_process, L)
    await _warm_up(slow, "warm")
    transfers_before = await ledger.all_transfers()
    balances_before = [await ledger.balance(account) for account in ("bank", "alice")]
    tasks_before = _running()

    admin = await asyncpg.connect(slow.dsn, timeout=WAIT_S)
    try:
        async with _row_locked(slow.dsn, "alice") as locker:
            task = asyncio.create_task(call(slow))
            waiting: list[int] = []

            async def waits_on_our_lock() -> bool:
                waiting.extend(
                    row["pid"]
                    for row in await _busy_backends(admin, locker)
                    if row["wait_event_type"] == "Lock" and row["state"] == "active"
                )
                return bool(waiting) or task.done()

            # The request really is held up by our lock ...
            await _until(waits_on_our_lock)
            assert waiting, "the request ended without ever waiting on the row lock"
            # ... and is abandoned while the lock is still held.
            await abandon(task)

            # With the lock still held, the server's statement has stopped waiting on it and no
            # transaction of the server's is left open: the database work was cancelled.
            async def nothing_busy() -> bool:
                return not await _busy_backends(admin, locker)

            try:
                await _until(nothing_busy, SETTLE_S)
            except TimeoutError:
                busy = [dict(row) for row in await _busy_backends(admin, locker)]
                pytest.fail(f"still busy in PostgreSQL while the lock is held: {busy}")
            state = await admin.fetchval(
                "SELECT state FROM pg_stat_activity WHERE pid = $1", waiting[0]
            )
            assert state not in _BUSY_STATES, state  # None: the connection was closed
    finally:
        await admin.close()

    # The lock is gone: nothing was written, and the server goes on posting normally.
    assert await ledger.all_transfers() == transfers_before
    assert [await ledger.balance(account) for account in ("bank", "alice")] == balances_before
    posted = ok(
        await slow.in_process.post(
            f"/v1/ledgers/{L}/transfers", json=pay("after", "bank", "alice", 1)
        )
    )
    assert posted["status"] == "POSTED"
    assert (await ledger.balance("alice"))["balance"] == balance(posted_credits=4, available=4)

    # Nothing the abandoned call started is still running in the servers' event loop.
    async def no_leftover_tasks() -> bool:
        return not _leftover(tasks_before, slow.listeners)

    try:
        await _until(no_leftover_tasks, SETTLE_S)
    except TimeoutError:
        left = _leftover(tasks_before, slow.listeners)
        pytest.fail(f"tasks left behind: {[(task, task.get_stack()) for task in left]}")


@pytest.mark.parametrize("way", list(WAYS))
async def test_a_deadline_cancels_the_work_down_to_the_database(slow: Slow, way: str) -> None:
    await _work_stops(slow, WAYS[way], _deadline_passes)


async def _grpc_without_deadline(slow: Slow) -> None:
    await slow.stub.PostTransfer(
        pb.PostTransferRequest(
            ledger=L,
            transfer=pb.TransferInput(
                idempotency_key="given-up",
                legs=[pb.Leg(debit_account="bank", credit_account="alice", amount=7)],
            ),
        )
    )


async def _rest_without_deadline(slow: Slow) -> None:
    # A client of its own, so that giving up closes its connection.
    async with httpx.AsyncClient(base_url=slow.in_process.base_url, timeout=WAIT_S) as client:
        await client.post(f"/v1/ledgers/{L}/transfers", json=pay("given-up", "bank", "alice", 7))


async def test_a_grpc_client_that_cancels_stops_the_work(slow: Slow) -> None:
    await _work_stops(slow, _grpc_without_deadline, _client_gives_up)


async def test_a_rest_client_that_disconnects_stops_the_work(slow: Slow) -> None:
    await _work_stops(slow, _rest_without_deadline, _client_gives_up)


# --- a deadline that passes while a streamed export waits on a slow client ---------------------

# Entries exported: comfortably more than the kernel's socket buffers hold on loopback (the
# gateway then has to wait for the client, which is where the deadline finds it).
STREAMED_ENTRIES = 64 * 400
STREAM_DEADLINE_S = 1.0


async def _read_slowly(port: int, path: str, headers: dict[str, str], pause_s: float) -> bytes:
    """GET ``path`` over a socket that reads nothing for ``pause_s``, then everything."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, set before SYN
    sock.setblocking(False)  # noqa: FBT003 - the socket API's own positional flag
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        await asyncio.sleep(pause_s)  # the slow client: the server's writes back up
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        async with asyncio.timeout(WAIT_S):
            return await reader.read()
    finally:
        writer.close()


def _dechunk(body: bytes) -> tuple[bytes, bool]:
    """The payload of a chunked HTTP body, and whether its terminating chunk arrived."""
    payload = bytearray()
    while body:
        size_line, found, rest = body.partition(b"\r\n")
        if not found:
            break
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return bytes(payload), True
        payload += rest[:size]
        body = rest[size + 2 :]
    return bytes(payload), False


async def test_a_deadline_during_a_streamed_export_ends_it_with_an_error_line(
    migrated_sqlite_url: str,
) -> None:
    async with serve_rest(migrated_sqlite_url) as api:
        ledger = Ledger(api.client, L)
        await ledger.create()
        await ledger.open("bank")
        await ledger.open("alice")
        legs = [leg("bank", "alice", 1)] * 64
        for chunk in range(STREAMED_ENTRIES // (64 * 100)):
            await ledger.batch([transfer_input(f"t-{chunk}-{n}", *legs) for n in range(100)])
        data = await _read_slowly(
            api.http_port,
            f"/v1/ledgers/{L}/accounts/alice/statement:export",
            {"X-Request-Timeout": str(STREAM_DEADLINE_S)},
            pause_s=2 * STREAM_DEADLINE_S,
        )
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    payload, complete = _dechunk(body)
    lines = payload.decode().splitlines()
    if complete and len(lines) == STREAMED_ENTRIES:
        pytest.skip("the socket buffers held the whole export: the deadline never met a wait")
    assert complete, f"the stream was cut after {len(lines)} lines"
    last = json.loads(lines[-1])
    assert last["error"]["code"] == "DEADLINE_EXCEEDED", last
