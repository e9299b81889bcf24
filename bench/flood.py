"""A burst of simultaneous gRPC calls on a fresh ``ledgerd serve``: how each call is answered.

Issue 11: of 3,000 gRPC calls sent at once, 21-24 % came back CANCELLED without reaching the
service. This starts ``ledgerd serve`` on a fresh embedded SQLite database (or the empty
PostgreSQL database ``--database-url``, migrated here), creates a ledger with two accounts,
then, scenario by scenario, sends ``--calls`` calls at once over one or several connections
(PostTransfer, GetAccount, or the health check, which admission leaves alone: the floor) and
counts the status codes. calls/s is the calls divided by the
time until the last was answered. From /proc: the server's CPU per call (user + system, every
thread), which the load of a shared machine disturbs less than calls/s, and its peak memory.

    python bench/flood.py [--calls 3000] [--limit N] [--database-url URL]

``--limit`` sets ``LEDGERD_MAX_CONCURRENT_CALLS``. The server started is the ``ledgerd`` next
to the interpreter, so another checkout's interpreter measures that checkout (before/after).
Writes bench/results/flood.json.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import grpc
from grpc_health.v1 import health_pb2

from ledgerd.loadgen.served import LEDGERD, ServedLedgerd
from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc

RESULTS = Path(__file__).resolve().parent / "results"
LEDGER = "flood"
CALL_TIMEOUT_S = 120.0
SCENARIOS = tuple(
    (method, channels)
    for method in ("PostTransfer", "GetAccount", "Health.Check")
    for channels in (1, 8)
)

Stub = ledger_pb2_grpc.LedgerServiceStub
Call = Callable[[grpc.aio.Channel, int], Awaitable[object]]


def _post(run: str) -> Call:
    def post(channel: grpc.aio.Channel, number: int) -> Awaitable[object]:
        transfer = pb.TransferInput(
            idempotency_key=f"{run}-{number}",
            legs=[pb.Leg(debit_account="bank", credit_account="alice", amount=1)],
        )
        request = pb.PostTransferRequest(ledger=LEDGER, transfer=transfer)
        # The stubs type a grpc.aio stub's calls as the sync stub's: they are awaitables here.
        call = Stub(channel).PostTransfer(request, timeout=CALL_TIMEOUT_S)
        return cast("Awaitable[object]", call)

    return post


def _get(channel: grpc.aio.Channel, _number: int) -> Awaitable[object]:
    request = pb.GetAccountRequest(ledger=LEDGER, account="alice")
    return cast("Awaitable[object]", Stub(channel).GetAccount(request, timeout=CALL_TIMEOUT_S))


def _check(channel: grpc.aio.Channel, _number: int) -> Awaitable[object]:
    check: grpc.aio.UnaryUnaryMultiCallable[
        health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
    ] = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    return check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S)


async def _code(call: Awaitable[object]) -> str:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code().name
    return "OK"


async def _burst(target: str, calls: int, channels: int, call: Call) -> dict[str, object]:
    opened = [grpc.aio.insecure_channel(target) for _ in range(channels)]
    try:
        for channel in opened:
            await channel.channel_ready()
        started = time.perf_counter()
        codes = await asyncio.gather(
            *(_code(call(opened[number % channels], number)) for number in range(calls))
        )
        elapsed = time.perf_counter() - started
    finally:
        for channel in opened:
            await channel.close()
    counted = collections.Counter(codes)
    return {
        "calls_per_s": round(calls / elapsed),
        "seconds": round(elapsed, 2),
        "codes": dict(counted.most_common()),
    }


async def _books(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = Stub(channel)
        await stub.CreateLedger(pb.CreateLedgerRequest(id=LEDGER), timeout=CALL_TIMEOUT_S)
        for account in ("bank", "alice"):
            await stub.CreateAccount(
                pb.CreateAccountRequest(ledger=LEDGER, id=account, asset="USD/2"),
                timeout=CALL_TIMEOUT_S,
            )


_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls sent at once")
    parser.add_argument("--limit", type=int, help="LEDGERD_MAX_CONCURRENT_CALLS for the server")
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: SQLite)")
    arguments = parser.parse_args()

    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as directory:
        url = arguments.database_url or f"sqlite+aiosqlite:///{directory}/flood.db"
        environment = {
            **os.environ,
            "LEDGERD_DATABASE_URL": url,
            "LEDGERD_LOG_LEVEL": "WARNING",
            # Off: it measures admission under overload; bench/auth.py measures authentication.
            "LEDGERD_AUTH": "off",
        }
        if arguments.limit is not None:
            environment["LEDGERD_MAX_CONCURRENT_CALLS"] = str(arguments.limit)
        if arguments.database_url:
            subprocess.run([str(LEDGERD), "migrate"], env=environment, check=True)  # noqa: S603 - our own console script
        rows: list[dict[str, object]] = []
        with ServedLedgerd(environment, Path(directory) / "server.log") as served:
            target = served.grpc.removeprefix("grpc://")
            asyncio.run(_books(target))
            for run, (method, channels) in enumerate(SCENARIOS):
                call = {"PostTransfer": _post(f"run{run}"), "GetAccount": _get}.get(method, _check)
                cpu = _cpu_seconds(served.pid)
                result = asyncio.run(_burst(target, arguments.calls, channels, call))
                cpu_per_call = (_cpu_seconds(served.pid) - cpu) / arguments.calls
                result["server_cpu_us_per_call"] = round(cpu_per_call * 1e6)
                rows.append({"method": method, "channels": channels, **result})
                print(f"{method:<12} {channels} channel(s): {result}", flush=True)
            peak = _peak_rss_mib(served.pid)
    report = {
        "calls": arguments.calls,
        "limit": arguments.limit,
        "database": "postgresql" if arguments.database_url else "sqlite",
        "ledgerd": str(LEDGERD),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "server_peak_rss_mib": peak,
        "scenarios": rows,
    }
    (RESULTS / "flood.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"server peak RSS {peak} MiB; load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
