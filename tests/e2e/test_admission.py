"""Overload on ``ledgerd serve`` is answered, never silent: RESOURCE_EXHAUSTED / 429 OVERLOADED.

Issue 11 found 21-24 % of 3,000 simultaneous gRPC calls coming back CANCELLED, unanswered:
grpc's core kept the calls the Python server had not picked up yet in a backlog, and dropped
them at random once it held more than 1,000. The server now bounds the calls it runs
(``LEDGERD_MAX_CONCURRENT_CALLS``) and answers those beyond with RESOURCE_EXHAUSTED carrying
ErrorInfo ``OVERLOADED`` and RetryInfo (429 with Retry-After over REST), and grpc's backlog is
large enough that every call gets that answer.

- The flood: 3,000 calls at once, reads and postings over several connections, on SQLite.
  Each one is answered OK or OVERLOADED; none CANCELLED; health checks in the flood answered.
- Calls held in the server: postings that wait on a row lock the test holds (PostgreSQL), as
  many as the limit. While they wait, every further call, gRPC or REST, is refused at once,
  health answers SERVING; once the lock is released the held calls are posted, and calls are
  admitted again.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from grpc_status import rpc_status
from sqlalchemy import text

from ledgerd.main.migrations import MIGRATIONS
from ledgerd.platform.db.engine import create_engine
from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc
from tests.e2e.grpc.test_serve import Served, ledgerd_serve

if TYPE_CHECKING:
    from ledgerd.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

pytestmark = pytest.mark.faults

L = "busy"
# Bounds, so that a hung server fails the test instead of stalling it; never measurements.
CALL_TIMEOUT_S = 60.0
WAIT_S = 30.0
FLOOD = 3_000
FLOOD_CHANNELS = 4
FLOOD_HEALTH_CHECKS = 20
FLOOD_LIMIT = 64
HELD_LIMIT = 4
HELD_EXTRA = 6
REST_LINE = "REST  http://127.0.0.1:"
# No access log line per call: thousands of them would fill the pipe the test reads them from.
QUIET = {"log_level": "WARNING"}

# "OK", or the status code's name with ErrorInfo's reason: "RESOURCE_EXHAUSTED OVERLOADED".
Outcome = str
OVERLOADED = "RESOURCE_EXHAUSTED OVERLOADED"
SERVING = "SERVING"


def _outcome_of(error: grpc.aio.AioRpcError) -> Outcome:
    """The code and the ledgerd reason; a refusal must also carry a positive RetryInfo."""
    status = rpc_status.from_call(cast("grpc.Call", error))
    if status is None:
        return error.code().name
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    reasons = [info.reason for detail in status.details if detail.Unpack(info)]
    delays = [
        retry.retry_delay.ToMilliseconds() for detail in status.details if detail.Unpack(retry)
    ]
    if reasons == ["OVERLOADED"]:
        assert info.domain == "ledgerd", status
        assert len(delays) == 1, status
        assert delays[0] > 0, status
    return " ".join([error.code().name, *reasons])


async def _outcome(call: Awaitable[object]) -> Outcome:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return _outcome_of(error)
    return "OK"


def _post(stub: LedgerServiceAsyncStub, key: str) -> Awaitable[pb.Transfer]:
    request = pb.PostTransferRequest(
        ledger=L,
        transfer=pb.TransferInput(
            idempotency_key=key,
            legs=[pb.Leg(debit_account="bank", credit_account="alice", amount=1)],
        ),
    )
    return stub.PostTransfer(request, timeout=CALL_TIMEOUT_S)


@dataclass(frozen=True, slots=True)
class Clients:
    stubs: Sequence[LedgerServiceAsyncStub]
    health: grpc.aio.UnaryUnaryMultiCallable[
        health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
    ]
    rest: httpx.AsyncClient

    @property
    def stub(self) -> LedgerServiceAsyncStub:
        return self.stubs[0]

    def round_robin(self) -> Iterator[LedgerServiceAsyncStub]:
        return itertools.cycle(self.stubs)

    async def serving(self) -> int:
        request = health_pb2.HealthCheckRequest()
        return (await self.health(request, timeout=CALL_TIMEOUT_S)).status

    async def health_outcome(self) -> Outcome:
        """SERVING for a check answered so; otherwise how it failed."""
        try:
            status = await self.serving()
        except grpc.aio.AioRpcError as error:
            return _outcome_of(error)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


@asynccontextmanager
async def _clients(served: Served, channels: int) -> AsyncIterator[Clients]:
    rest_line = await served.read_until(lambda line: line.startswith(REST_LINE))
    rest_port = int(rest_line.removeprefix(REST_LINE).partition("/")[0])
    async with AsyncExitStack() as stack:
        opened = [
            await stack.enter_async_context(grpc.aio.insecure_channel(f"127.0.0.1:{served.port}"))
            for _ in range(channels)
        ]
        rest = await stack.enter_async_context(
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{rest_port}", timeout=CALL_TIMEOUT_S)
        )
        stubs = [ledger_pb2_grpc.LedgerServiceStub(channel) for channel in opened]
        check: grpc.aio.UnaryUnaryMultiCallable[
            health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        ] = opened[0].unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        clients = Clients(stubs, check, rest)
        await clients.stub.CreateLedger(pb.CreateLedgerRequest(id=L), timeout=CALL_TIMEOUT_S)
        for account in ("bank", "alice"):
            await clients.stub.CreateAccount(
                pb.CreateAccountRequest(ledger=L, id=account, asset="USD/2"),
                timeout=CALL_TIMEOUT_S,
            )
        yield clients


async def test_a_flood_of_calls_is_answered_ok_or_overloaded_never_cancelled(
    sqlite_url: str,
) -> None:
    async with (
        ledgerd_serve(sqlite_url, max_concurrent_calls=str(FLOOD_LIMIT), **QUIET) as served,
        _clients(served, FLOOD_CHANNELS) as clients,
    ):
        stubs = clients.round_robin()

        def call(number: int) -> Awaitable[object]:
            stub = next(stubs)
            if number % 2:
                return _post(stub, f"flood-{number}")
            return stub.GetAccount(
                pb.GetAccountRequest(ledger=L, account="alice"), timeout=CALL_TIMEOUT_S
            )

        checks_every = FLOOD // FLOOD_HEALTH_CHECKS
        flood = [
            clients.health_outcome() if number % checks_every == 0 else _outcome(call(number))
            for number in range(FLOOD)
        ]
        async with asyncio.timeout(CALL_TIMEOUT_S):
            outcomes = collections.Counter(await asyncio.gather(*flood))

        assert set(outcomes) == {"OK", OVERLOADED, SERVING}, outcomes
        assert outcomes[SERVING] == FLOOD_HEALTH_CHECKS, outcomes
        # Calls are admitted again once the flood has passed.
        assert await clients.serving() == health_pb2.HealthCheckResponse.SERVING
        await _post(clients.stub, "after-the-flood")


@contextmanager
def _no_leaks(tasks: Sequence[asyncio.Task[Outcome]]) -> Iterator[None]:
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()


async def test_calls_beyond_the_limit_are_refused_while_admitted_calls_wait_and_then_complete(
    postgres_url: str,
) -> None:
    engine = create_engine(postgres_url)
    try:
        await MIGRATIONS.upgrade(engine)
        async with (
            ledgerd_serve(postgres_url, max_concurrent_calls=str(HELD_LIMIT), **QUIET) as served,
            _clients(served, 2) as clients,
            engine.connect() as blocker,
        ):
            # Every posting locks its ledger's chain head: held here, the postings wait on it.
            await blocker.execute(
                text("SELECT id FROM ledgers WHERE id = :id FOR UPDATE"), {"id": L}
            )
            stubs = clients.round_robin()
            keys = [f"held-{number}" for number in range(HELD_LIMIT + HELD_EXTRA)]
            tasks = [asyncio.ensure_future(_outcome(_post(next(stubs), key))) for key in keys]
            with _no_leaks(tasks):
                # Exactly the limit is admitted (and waits on the lock); the rest are refused.
                try:
                    async with asyncio.timeout(WAIT_S):
                        while sum(task.done() for task in tasks) < HELD_EXTRA:
                            waiting = [task for task in tasks if not task.done()]
                            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                except TimeoutError:
                    answered = sum(task.done() for task in tasks)
                    pytest.fail(f"{answered} of {len(tasks)} calls answered, not {HELD_EXTRA}")
                refused = [task.result() for task in tasks if task.done()]
                assert refused == [OVERLOADED] * HELD_EXTRA

                # While full: probes answer, any other call is refused, over both transports.
                assert await clients.serving() == health_pb2.HealthCheckResponse.SERVING
                read = clients.stub.GetLedger(pb.GetLedgerRequest(ledger=L), timeout=CALL_TIMEOUT_S)
                assert await _outcome(read) == OVERLOADED
                assert (await clients.rest.get("/healthz")).status_code == 200
                over_rest = await clients.rest.get(f"/v1/ledgers/{L}")
                assert over_rest.status_code == 429, over_rest.text
                assert over_rest.json()["code"] == "OVERLOADED"
                assert int(over_rest.headers["retry-after"]) >= 1

                await blocker.rollback()
                async with asyncio.timeout(WAIT_S):
                    outcomes = await asyncio.gather(*tasks)
            assert sorted(outcomes) == sorted(["OK"] * HELD_LIMIT + [OVERLOADED] * HELD_EXTRA)

            # Admitted again, and only the admitted postings were written.
            await _post(clients.stub, "after")
            assert (await clients.rest.get(f"/v1/ledgers/{L}")).status_code == 200
            listed = await clients.stub.ListTransfers(
                pb.ListTransfersRequest(ledger=L, page_size=100), timeout=CALL_TIMEOUT_S
            )
            admitted = {key for key, outcome in zip(keys, outcomes, strict=True) if outcome == "OK"}
            assert {t.idempotency_key for t in listed.transfers} == {*admitted, "after"}
    finally:
        await engine.dispose()
