"""Deadlines and cancellations from 2 to 400 ms never make an answer lie (issue 11, item 2).

Under load, 322 of 1,616 HTTP 504s and 773 of 3,847 gRPC DEADLINE_EXCEEDED answers were for
transfers that had been committed: a client trusting "deadline exceeded = nothing written"
would post again with a new key and pay twice. Here many clients post single transfers and
batches to a real ``ledgerd serve`` over gRPC and REST, each call with a deadline between 2 and
400 ms or cancelled by the client after such a delay, and every answer is checked against the
ledger afterwards:

- every success (a call, or an item of a batch) is in the ledger;
- every definite failure (any ledgerd error but OUTCOME_UNKNOWN) is not;
- the ambiguous rest (OUTCOME_UNKNOWN, and what the client library said without an answer from
  the server: its own deadline, its own cancellation) is settled by posting again with the same
  key, which never makes a second transfer.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import grpc
import httpx

from ledgerd.main.migrations import MIGRATIONS
from ledgerd.platform.db.engine import create_engine
from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc
from tests.e2e.grpc.test_serve import Served, ledgerd_serve
from tests.faults.ledger_view import Ledger, Tally
from tests.faults.outcomes import Answer, grpc_reply, rest_reply

if TYPE_CHECKING:
    from ledgerd.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

L = "sweep"
ACCOUNTS = 20
CLIENTS = 24
LOAD_S = 6.0
DEADLINES_MS = (2, 400)
BATCH_SIZES = (1, 40)
REST = re.compile(r"^REST\s+(http://127\.0\.0\.1:\d+)/v1/ledgers$")
# Bounds for things that should take a moment; not measurements.
SETTLE_S = 30.0
CALL_TIMEOUT_S = 30.0


@asynccontextmanager
async def _serving(database_url: str) -> AsyncIterator[tuple[Served, str]]:
    if not database_url.startswith("sqlite"):
        engine = create_engine(database_url)
        try:
            await MIGRATIONS.upgrade(engine)
        finally:
            await engine.dispose()
    async with ledgerd_serve(database_url) as served:
        line = await served.read_until(lambda text: REST.match(text) is not None)
        match = REST.match(line)
        assert match is not None
        served.drain()  # the load's access-log lines would fill the pipe
        yield served, match.group(1)


def _transfer(key: str, rng: random.Random) -> pb.TransferInput:
    account = f"a{rng.randrange(ACCOUNTS)}"
    leg = pb.Leg(debit_account="bank", credit_account=account, amount=rng.randint(1, 99))
    return pb.TransferInput(idempotency_key=key, legs=[leg])


async def _grpc_call(
    stub: LedgerServiceAsyncStub, items: Sequence[pb.TransferInput], rng: random.Random
) -> list[Answer]:
    """One gRPC call with a deadline, or cancelled by the client; each item's verdict."""
    delay_s = rng.uniform(*DEADLINES_MS) / 1000
    cancel = rng.random() < 0.3
    timeout = None if cancel else delay_s
    call: grpc.aio.UnaryUnaryCall[Any, Any] = (
        stub.PostTransfer(pb.PostTransferRequest(ledger=L, transfer=items[0]), timeout=timeout)
        if len(items) == 1
        else stub.PostTransfers(pb.PostTransfersRequest(ledger=L, transfers=items), timeout=timeout)
    )
    if cancel:
        await asyncio.sleep(delay_s)
        call.cancel()
    try:
        response = await call
    except asyncio.CancelledError:
        return [Answer.AMBIGUOUS] * len(items)  # cancelled by us: no answer came
    except grpc.aio.AioRpcError as error:
        return [grpc_reply(error).answer] * len(items)
    if isinstance(response, pb.PostTransfersResponse):
        return [
            Answer.ACKNOWLEDGED if result.HasField("transfer") else Answer.FAILED
            for result in response.results
        ]
    return [Answer.ACKNOWLEDGED]


async def _rest_call(
    http: httpx.AsyncClient, items: Sequence[pb.TransferInput], rng: random.Random
) -> list[Answer]:
    """One REST call with X-Request-Timeout, or abandoned by the client (its connection closed)."""
    delay_s = rng.uniform(*DEADLINES_MS) / 1000
    leave = rng.random() < 0.3
    bodies = [Ledger.json_of(item) for item in items]
    path, body = (
        (f"/v1/ledgers/{L}/transfers", bodies[0])
        if len(items) == 1
        else (f"/v1/ledgers/{L}/transfers:batch", {"transfers": bodies})
    )
    headers = {} if leave else {"x-request-timeout": f"{delay_s:.3f}"}
    # Leaving: the client gives up after the delay and drops the connection. Otherwise it
    # waits for the server's answer, which the deadline (plus the commit grace) bounds.
    timeout = delay_s if leave else CALL_TIMEOUT_S
    try:
        response = await http.post(path, json=body, headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        return [Answer.AMBIGUOUS] * len(items)
    verdict = rest_reply(response.status_code, response.content).answer
    if verdict is Answer.ACKNOWLEDGED and len(items) > 1:
        return [
            Answer.ACKNOWLEDGED if "transfer" in result else Answer.FAILED
            for result in response.json()["results"]
        ]
    return [verdict] * len(items)


async def _client(
    number: int, grpc_port: int, base_url: str, tally: Tally, stop: asyncio.Event
) -> None:
    rng = random.Random(number)  # noqa: S311 - a reproducible load, not a secret
    calls = 0
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
        httpx.AsyncClient(base_url=base_url) as http,
    ):
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        while not stop.is_set():
            calls += 1
            size = 1 if rng.random() < 0.5 else rng.randint(*BATCH_SIZES)
            items = [_transfer(f"c{number}-{calls}-{n}", rng) for n in range(size)]
            if number % 2:
                verdicts = await _grpc_call(stub, items, rng)
            else:
                verdicts = await _rest_call(http, items, rng)
            for item, verdict in zip(items, verdicts, strict=True):
                tally.record(item, verdict)


async def test_no_answer_lies_under_deadlines_and_cancellations(
    database_url: str, fault_figures: Callable[[str], None]
) -> None:
    database = database_url.partition("+")[0]
    tally = Tally()
    async with _serving(database_url) as (served, base_url):
        ledger = Ledger(served.port, L)
        await ledger.open(["bank", *(f"a{n}" for n in range(ACCOUNTS))])
        stop = asyncio.Event()
        clients = [
            asyncio.create_task(_client(n, served.port, base_url, tally, stop))
            for n in range(CLIENTS)
        ]
        await asyncio.sleep(LOAD_S)
        stop.set()
        async with asyncio.timeout(SETTLE_S):
            await asyncio.gather(*clients)
            stored = await ledger.settled_transfers()

        acknowledged = tally.keys(Answer.ACKNOWLEDGED)
        definite = tally.keys(Answer.FAILED)
        ambiguous = tally.keys(Answer.AMBIGUOUS)
        lost = acknowledged - stored.keys()
        false_failures = definite & stored.keys()
        summary = (
            f"{database}: {len(tally.answers)} transfers asked for: {len(acknowledged)} "
            f"acknowledged, {len(definite)} definite failures, {len(ambiguous)} ambiguous; "
            f"lost {len(lost)}, definite failures written {len(false_failures)}"
        )
        fault_figures(summary)
        assert not lost, summary
        assert not false_failures, summary
        # The sweep reached every side: answers in time, deadlines the server saw, and ones
        # it could not answer before the client gave up.
        assert acknowledged, summary
        assert definite, summary
        assert ambiguous, summary

        # The ambiguous ones settle by posting again under the same key: once each, at most.
        settled = await ledger.post_again([tally.bodies[key] for key in sorted(ambiguous)])
        replays = {key for key, replayed in settled.items() if replayed}
        assert replays <= stored.keys(), summary
        assert not (ambiguous - replays) & stored.keys(), summary
        final = await ledger.settled_transfers()
        assert final.keys() == stored.keys() | ambiguous
        assert len(final) == len(set(final))
        assert await ledger.balances_match(final), summary
