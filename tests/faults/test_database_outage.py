"""``ledgerd serve`` while its PostgreSQL is cut off, then stalled (issue 11, item 3).

A TCP proxy the test controls stands between the server and PostgreSQL. Clients post over
gRPC and REST throughout: before, during a cut (connections dropped, new ones refused),
after, during a stall (connections open, nothing answered), and after again. What they must
see: during an outage UNAVAILABLE / 503 with a retry hint (OUTCOME_UNKNOWN where a commit was in
flight), never INTERNAL / 500; the server taking calls again by itself once the database is
back; and afterwards a ledger where every acknowledged transfer is, no definitely failed one
is, nothing is half-written (``ledgerd verify``), and the log says so in a few lines, not one
traceback per failed call.
"""

from __future__ import annotations

import asyncio
import random
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import grpc
import httpx
import pytest
from grpc_status import rpc_status
from sqlalchemy.engine import make_url

from ledgerd.main.migrations import MIGRATIONS
from ledgerd.platform.api.grpc_errors import error_of
from ledgerd.platform.db.engine import create_engine
from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc
from tests.e2e.grpc.test_serve import STOPPED, Served, ledgerd_serve, says
from tests.fakes.tcp_proxy import TcpProxy
from tests.faults.ledger_view import Ledger, Tally
from tests.faults.outcomes import Answer, grpc_reply, rest_reply

pytestmark = pytest.mark.postgres

L = "outage"
ACCOUNTS = 10
CLIENTS = 8
PHASE_S = 1.5
CALL_DEADLINE_S = 1.0
# The server's client-side limits, short so that the stall is noticed within the phase.
SERVER_SETTINGS = {
    "database_pool_timeout_seconds": "0.5",
    "database_connect_timeout_seconds": "0.5",
    "database_statement_timeout_seconds": "1",
    "commit_grace_seconds": "0.5",
    "health_interval_seconds": "0.2",
}
REST = re.compile(r"^REST\s+(http://127\.0\.0\.1:\d+)/v1/ledgers$")
LEDGERD = Path(sys.executable).parent / "ledgerd"
# Liveness bounds, not measurements: a healthy run takes a fraction of each.
RECOVERY_LIMIT_S = 15.0
SETTLE_S = 60.0
CALL_TIMEOUT_S = 30.0


@dataclass
class Seen(Tally):
    """What the clients saw: each key's answer, and each answer's code per phase."""

    codes: Counter[tuple[str, str]] = field(default_factory=Counter)
    phase: str = "before"
    last_success: float = 0.0

    def record_coded(self, item: pb.TransferInput, answer: Answer, code: str) -> None:
        self.record(item, answer)
        self.codes[self.phase, code] += 1
        if answer is Answer.ACKNOWLEDGED:
            self.last_success = time.monotonic()


def _grpc_code(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(cast("grpc.Call", error))
    ledgerd_error = None if status is None else error_of(status)
    if ledgerd_error is None:
        return f"grpc {error.code().name}"
    has_retry_info = any(
        detail.type_url.endswith("google.rpc.RetryInfo")
        for detail in (status.details if status is not None else ())
    )
    hint = " +RetryInfo" if has_retry_info else ""
    return f"grpc {error.code().name} {ledgerd_error.code}{hint}"


def _rest_code(response: httpx.Response) -> str:
    if response.status_code == httpx.codes.OK:
        return "http 200"
    hint = " +Retry-After" if "retry-after" in response.headers else ""
    return f"http {response.status_code} {response.json().get('code')}{hint}"


async def _client(
    number: int, served: Served, base_url: str, seen: Seen, stop: asyncio.Event
) -> None:
    rng = random.Random(number)  # noqa: S311 - a reproducible load, not a secret
    calls = 0
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel,
        httpx.AsyncClient(base_url=base_url, timeout=CALL_TIMEOUT_S) as http,
    ):
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        while not stop.is_set():
            calls += 1
            account = f"a{rng.randrange(ACCOUNTS)}"
            item = pb.TransferInput(
                idempotency_key=f"c{number}-{calls}",
                legs=[pb.Leg(debit_account="bank", credit_account=account, amount=1)],
            )
            if number % 2:
                try:
                    await stub.PostTransfer(
                        pb.PostTransferRequest(ledger=L, transfer=item), timeout=CALL_DEADLINE_S
                    )
                except grpc.aio.AioRpcError as error:
                    seen.record_coded(item, grpc_reply(error).answer, _grpc_code(error))
                else:
                    seen.record_coded(item, Answer.ACKNOWLEDGED, "grpc OK")
            else:
                response = await http.post(
                    f"/v1/ledgers/{L}/transfers",
                    json=Ledger.json_of(item),
                    headers={"x-request-timeout": f"{CALL_DEADLINE_S}"},
                )
                seen.record_coded(
                    item,
                    rest_reply(response.status_code, response.content).answer,
                    _rest_code(response),
                )
            await asyncio.sleep(0.01)  # a steady load, not a flood


@asynccontextmanager
async def _serving_through(proxy: TcpProxy, postgres_url: str) -> AsyncIterator[tuple[Served, str]]:
    engine = create_engine(postgres_url)
    try:
        await MIGRATIONS.upgrade(engine)
    finally:
        await engine.dispose()
    url = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
    async with ledgerd_serve(
        url.render_as_string(hide_password=False), **SERVER_SETTINGS
    ) as served:
        line = await served.read_until(lambda text: REST.match(text) is not None)
        match = REST.match(line)
        assert match is not None
        served.drain()  # the load's access-log lines would fill the pipe
        yield served, match.group(1)


async def _recovered(seen: Seen, since: float) -> float:
    """Seconds from ``since`` until a client's call succeeded again."""
    async with asyncio.timeout(RECOVERY_LIMIT_S):
        while True:
            if seen.last_success > since:
                return seen.last_success - since
            await asyncio.sleep(0.01)


async def _outages(proxy: TcpProxy, seen: Seen) -> tuple[float, float]:
    """Load, cut, restore, stall, resume; the seconds to recover from the cut and the stall."""
    await asyncio.sleep(PHASE_S)
    seen.phase = "cut"
    await proxy.cut()
    await asyncio.sleep(PHASE_S)
    seen.phase = "after cut"
    restored = time.monotonic()
    await proxy.restore()
    after_cut_s = await _recovered(seen, restored)
    await asyncio.sleep(PHASE_S)
    seen.phase = "stall"
    proxy.stall()
    await asyncio.sleep(PHASE_S)
    seen.phase = "after stall"
    resumed = time.monotonic()
    proxy.resume()
    after_stall_s = await _recovered(seen, resumed)
    await asyncio.sleep(PHASE_S)
    return after_cut_s, after_stall_s


async def test_outages_answer_unavailable_and_nothing_is_half_written(
    postgres_url: str, fault_figures: Callable[[str], None]
) -> None:
    proxy = TcpProxy("127.0.0.1", make_url(postgres_url).port or 5432)
    await proxy.start()
    seen = Seen()
    try:
        async with _serving_through(proxy, postgres_url) as (served, base_url):
            ledger = Ledger(served.port, L)
            await ledger.open(["bank", *(f"a{n}" for n in range(ACCOUNTS))])
            stop = asyncio.Event()
            clients = [
                asyncio.create_task(_client(n, served, base_url, seen, stop))
                for n in range(CLIENTS)
            ]
            after_cut_s, after_stall_s = await _outages(proxy, seen)
            stop.set()
            async with asyncio.timeout(SETTLE_S):
                await asyncio.gather(*clients)
                stored = await ledger.settled_transfers()
                settled = await ledger.post_again(
                    [seen.bodies[key] for key in sorted(seen.keys(Answer.AMBIGUOUS))]
                )
                final = await ledger.settled_transfers()
            balanced = await ledger.balances_match(final)
            served.process.terminate()
            assert await served.wait_for_exit() == 0, served.log
    finally:
        await proxy.aclose()

    acknowledged = seen.keys(Answer.ACKNOWLEDGED)
    definite = seen.keys(Answer.FAILED)
    ambiguous = seen.keys(Answer.AMBIGUOUS)
    summary = (
        f"{len(seen.answers)} calls: {len(acknowledged)} acknowledged, {len(definite)} definite "
        f"failures, {len(ambiguous)} ambiguous; recovered {after_cut_s:.2f} s after the cut, "
        f"{after_stall_s:.2f} s after the stall; codes {dict(seen.codes)}"
    )
    fault_figures(summary)
    # Nothing acknowledged is lost, nothing definitely failed is written, and posting the
    # ambiguous ones again under their keys never makes a second transfer.
    assert not acknowledged - stored.keys(), summary
    assert not definite & stored.keys(), summary
    assert {key for key, replayed in settled.items() if replayed} <= stored.keys(), summary
    assert final.keys() == stored.keys() | ambiguous, summary
    assert balanced, summary
    # An outage is never a bug: no INTERNAL, no 500; the failures say to retry, with a hint.
    failures = {
        code for (_, code), _count in seen.codes.items() if code not in ("grpc OK", "http 200")
    }
    assert not {code for code in failures if "INTERNAL" in code or " 500 " in code}, summary
    server_answers = {code for code in failures if "UNAVAILABLE" in code or "OUTCOME" in code}
    assert server_answers, summary
    assert all("+RetryInfo" in code or "+Retry-After" in code for code in server_answers), summary
    # The log tells of the outage in a few lines, not a traceback per failed call.
    assert served.log.count("Traceback") == 0, served.log[-5000:]
    assert served.log.count("the database is unavailable") < 20, served.log[-5000:]
    verify = await asyncio.create_subprocess_exec(
        str(LEDGERD),
        "verify",
        L,
        env={"LEDGERD_DATABASE_URL": postgres_url, "PATH": ""},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await verify.communicate()
    assert verify.returncode == 0, output.decode()


async def test_a_server_whose_database_stalls_still_stops_on_sigterm(
    postgres_url: str, fault_figures: Callable[[str], None]
) -> None:
    """One wedged server logged "ledgerd stopped" and lived on for minutes: never again."""
    proxy = TcpProxy("127.0.0.1", make_url(postgres_url).port or 5432)
    await proxy.start()
    try:
        async with _serving_through(proxy, postgres_url) as (served, base_url):
            ledger = Ledger(served.port, L)
            await ledger.open(["bank", "a0"])
            seen, stop = Seen(), asyncio.Event()
            clients = [
                asyncio.create_task(_client(n, served, base_url, seen, stop)) for n in range(4)
            ]
            await asyncio.sleep(0.5)
            proxy.stall()  # calls in flight hang on the database from here on
            await asyncio.sleep(0.5)
            stopping = time.monotonic()
            served.process.terminate()
            exit_code = await served.wait_for_exit()  # bounded: fails the test if it hangs
            stopped_s = time.monotonic() - stopping
            stop.set()
            await asyncio.gather(*clients, return_exceptions=True)
    finally:
        proxy.resume()
        await proxy.aclose()
    fault_figures(f"stopped {stopped_s:.2f} s after SIGTERM, its database stalled")
    assert exit_code == 0, served.log
    assert says(served.output[-1], STOPPED), served.log
