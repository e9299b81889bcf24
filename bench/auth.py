"""What authentication costs a call: GetBalance with ``LEDGERD_AUTH=required`` against ``off``.

One fresh PostgreSQL database, migrated, with one ledger and one account; three ``ledgerd
serve`` processes on it: ``LEDGERD_AUTH=off``, ``required``, and ``required`` without the cache
of verified tokens (``LEDGERD_VERIFIED_TOKEN_CACHE_SECONDS=0``). Rounds alternate between them
(off, required, required-uncached, off, ...; ``--rounds`` of each, ``--round-duration`` long),
so that the drift of a shared, noisy machine falls on every mode alike. Each round,
``--processes`` client processes (fresh interpreters: this script with ``--client``) run
``--clients`` concurrent grpc.aio callers between them, each calling ``GetBalance`` on that
account back to back; the required rounds send a token got by the client-credentials grant (a
client made on the database, as ``bench/run.py`` does). Reports each mode's median requests/s
over its rounds, each required mode's ratio to off, and p50/p99 latency (median over rounds);
writes bench/results/auth.json.

    python bench/auth.py [--rounds 3] [--round-duration 10s] [--clients 32] [--processes 1]

The cost of verification itself, per call, is in the micro-benchmarks
(bench/micro/test_call_pipeline.py: the pipeline bare, with authentication, with its cache).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import grpc

from ledgerd.loadgen.config import parse_duration, parse_target
from ledgerd.loadgen.credentials import BearerHeader, TokenKeeper, bench_auth
from ledgerd.loadgen.grpc_transport import GrpcTransport
from ledgerd.loadgen.pgbench import ServerAddress, drop_database, recreate_database
from ledgerd.loadgen.served import LEDGERD, BenchClient, ServedLedgerd
from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_SERVER_URL = os.environ.get(
    "LEDGERD_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
DATABASE = "ledgerd_bench_auth"
LEDGER = "auth-bench"
ACCOUNT = "balance-1"
OFF, REQUIRED, UNCACHED = "off", "required", "required-uncached"
# The server settings of each mode: the third is "required" without the cache of verified
# tokens, so the cache's worth is measured in the same run.
MODES = {
    OFF: {"LEDGERD_AUTH": "off"},
    REQUIRED: {"LEDGERD_AUTH": "required"},
    UNCACHED: {"LEDGERD_AUTH": "required", "LEDGERD_VERIFIED_TOKEN_CACHE_SECONDS": "0"},
}
WARM_UP_S = 1.0
CALL_TIMEOUT_S = 10.0
_TOKEN_ENV = "LEDGERD_TOKEN"  # noqa: S105 - the name of a variable, not a password
# Each client its own TCP connection, as separate client machines would have.
_OWN_CONNECTION = (("grpc.use_local_subchannel_pool", 1),)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each mode (>= 1)")
    parser.add_argument("--round-duration", default="10s")
    parser.add_argument("--clients", type=int, default=32, help="concurrent callers in all")
    parser.add_argument("--processes", type=int, default=1, help="client processes per round")
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL, help="a PostgreSQL server")
    parser.add_argument("--client", metavar="TARGET", help=argparse.SUPPRESS)  # one process
    arguments = parser.parse_args()
    duration = parse_duration(arguments.round_duration)
    if arguments.client:
        result = asyncio.run(_client_process(arguments.client, arguments.clients, duration))
        print(json.dumps(result))
        return 0
    return _benchmark(arguments, duration)


def _benchmark(arguments: argparse.Namespace, duration: float) -> int:
    server = ServerAddress.from_url(arguments.server_url)
    database_url = arguments.server_url.rsplit("/", 1)[0] + f"/{DATABASE}"
    RESULTS.mkdir(exist_ok=True)
    asyncio.run(recreate_database(server, DATABASE))
    base = {
        **os.environ,
        "LEDGERD_DATABASE_URL": database_url,
        "LEDGERD_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    base.pop("PYTHONDONTWRITEBYTECODE", None)
    load_before = os.getloadavg()
    try:
        subprocess.run([LEDGERD, "migrate"], env=base, check=True)  # noqa: S603 - ours
        client = BenchClient.create(base)
        with ExitStack() as stack:
            servers = {
                mode: stack.enter_context(
                    ServedLedgerd({**base, **settings}, RESULTS / f"auth-{mode}.log")
                )
                for mode, settings in MODES.items()
            }
            token_url = servers[REQUIRED].token_url
            asyncio.run(_set_up(servers[REQUIRED].grpc, client, token_url))
            rounds = _alternate(arguments, duration, servers, client, token_url)
    finally:
        asyncio.run(drop_database(server, DATABASE))
    document = _document(arguments, duration, rounds, load_before)
    (RESULTS / "auth.json").write_text(json.dumps(document, indent=2) + "\n")
    print(_table(document))
    return 0


async def _set_up(target: str, client: BenchClient, token_url: str) -> None:
    """The ledger and its account, made through the authenticated server.

    The client is granted the ledger it creates, so its token's grant covers it.
    """
    async with _token(target, client, token_url) as header:
        transport = GrpcTransport(target.removeprefix("grpc://"), CALL_TIMEOUT_S, header)
        try:
            await transport.connect()
            await transport.create_ledger(LEDGER)
            await transport.create_account(LEDGER, ACCOUNT, "USD/2")
        finally:
            await transport.close()


@asynccontextmanager
async def _token(target: str, client: BenchClient, token_url: str) -> AsyncIterator[BearerHeader]:
    """A token got by the client-credentials grant, for the time of the block."""
    auth = bench_auth(parse_target(target), None, client.client_id, client.client_secret, token_url)
    keeper = TokenKeeper(auth)
    await keeper.start()
    try:
        yield keeper.header
    finally:
        await keeper.stop()


def _alternate(
    arguments: argparse.Namespace,
    duration: float,
    servers: dict[str, ServedLedgerd],
    client: BenchClient,
    token_url: str,
) -> list[dict[str, Any]]:
    rounds = []
    for number in range(arguments.rounds):
        for mode in MODES:
            target = servers[mode].grpc
            token = None
            if mode != OFF:
                token = asyncio.run(_fresh_token(target, client, token_url))
            result = _round(arguments, duration, target, token)
            result.update(mode=mode, round=number + 1)
            rounds.append(result)
            print(
                f"round {number + 1} {mode:>17}: {result['requests_per_s']:>8,.0f} requests/s  "
                f"p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms  "
                f"errors {result['errors']}",
                flush=True,
            )
    return rounds


async def _fresh_token(target: str, client: BenchClient, token_url: str) -> str:
    async with _token(target, client, token_url) as header:
        assert header.value is not None  # noqa: S101 - start() got one or raised
        return header.value.removeprefix("Bearer ")


def _round(
    arguments: argparse.Namespace, duration: float, target: str, token: str | None
) -> dict[str, Any]:
    """One round: the client processes started together; their calls and latencies merged."""
    shares = [
        arguments.clients // arguments.processes + (index < arguments.clients % arguments.processes)
        for index in range(arguments.processes)
    ]
    environment = dict(os.environ)
    environment.pop(_TOKEN_ENV, None)
    if token is not None:
        environment[_TOKEN_ENV] = token  # the environment, not the command line `ps` shows
    with _clients(shares, target, arguments.round_duration, environment) as processes:
        outputs = [process.communicate()[0] for process in processes]
    calls, errors, latencies = 0, 0, []
    for process, output in zip(processes, outputs, strict=True):
        if process.returncode != 0:
            msg = f"a client process failed ({process.returncode}); its error is above"
            raise RuntimeError(msg)
        result = json.loads(output)
        calls += result["calls"]
        errors += result["errors"]
        latencies.extend(result["latencies_us"])
    latencies.sort()
    return {
        "requests_per_s": calls / duration,
        "calls": calls,
        "errors": errors,
        "p50_ms": _percentile(latencies, 0.50) / 1000,
        "p99_ms": _percentile(latencies, 0.99) / 1000,
    }


@contextmanager
def _clients(
    shares: list[int], target: str, duration: str, environment: dict[str, str]
) -> Iterator[list[subprocess.Popen[str]]]:
    processes = [
        subprocess.Popen(  # noqa: S603 - this script
            [
                sys.executable,
                __file__,
                f"--client={target}",
                f"--clients={share}",
                f"--round-duration={duration}",
            ],
            env=environment,
            stdout=subprocess.PIPE,
            text=True,
        )
        for share in shares
    ]
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def _percentile(ordered: list[int], fraction: float) -> float:
    if not ordered:
        return 0.0
    return float(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))])


async def _client_process(target: str, clients: int, duration: float) -> dict[str, Any]:
    """One process's callers: connect, warm up, call for ``duration``; count and time."""
    token = os.environ.get(_TOKEN_ENV)
    metadata = None if token is None else (("authorization", f"Bearer {token}"),)
    address = target.removeprefix("grpc://")
    channels = [grpc.aio.insecure_channel(address, options=_OWN_CONNECTION) for _ in range(clients)]
    request = pb.GetBalanceRequest(ledger=LEDGER, account=ACCOUNT)
    latencies: list[int] = []
    counts = {"calls": 0, "errors": 0}

    async def caller(channel: grpc.aio.Channel, until: float, *, record: bool) -> None:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        clock = time.perf_counter
        while (began := clock()) < until:
            try:
                await stub.GetBalance(request, timeout=CALL_TIMEOUT_S, metadata=metadata)
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                    raise  # the token was refused: no figure to report
                counts["errors"] += record
                continue
            if record:
                latencies.append(round((clock() - began) * 1e6))
                counts["calls"] += 1

    try:
        await asyncio.gather(*(channel.channel_ready() for channel in channels))
        warm_until = time.perf_counter() + WARM_UP_S
        await asyncio.gather(*(caller(channel, warm_until, record=False) for channel in channels))
        until = time.perf_counter() + duration
        await asyncio.gather(*(caller(channel, until, record=True) for channel in channels))
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))
    return {**counts, "latencies_us": latencies}


def _document(
    arguments: argparse.Namespace,
    duration: float,
    rounds: list[dict[str, Any]],
    load_before: tuple[float, float, float],
) -> dict[str, Any]:
    modes: dict[str, Any] = {}
    for mode in MODES:
        mine = [each for each in rounds if each["mode"] == mode]
        modes[mode] = {
            "requests_per_s_median": round(statistics.median(r["requests_per_s"] for r in mine), 1),
            "requests_per_s_rounds": [round(r["requests_per_s"], 1) for r in mine],
            "p50_ms_median": round(statistics.median(r["p50_ms"] for r in mine), 3),
            "p99_ms_median": round(statistics.median(r["p99_ms"] for r in mine), 3),
            "errors": sum(r["errors"] for r in mine),
        }
    off = modes[OFF]["requests_per_s_median"]
    return {
        "what": "GetBalance on one account over gRPC: LEDGERD_AUTH=required (with and without "
        "the cache of verified tokens) vs off, one database",
        "rounds_per_mode": arguments.rounds,
        "round_duration_s": duration,
        "clients": arguments.clients,
        "client_processes": arguments.processes,
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(value, 2) for value in load_before],
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
        "modes": modes,
        "ratio_to_off": {
            mode: round(modes[mode]["requests_per_s_median"] / off, 3) if off else None
            for mode in (REQUIRED, UNCACHED)
        },
        "rounds": [
            {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rounds
        ],
    }


def _table(document: dict[str, Any]) -> str:
    lines = [
        "| LEDGERD_AUTH | requests/s (median) | rounds | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
    ]
    for mode, figures in document["modes"].items():
        each = ", ".join(f"{rate:,.0f}" for rate in figures["requests_per_s_rounds"])
        lines.append(
            f"| {mode} | {figures['requests_per_s_median']:,.0f} | {each} "
            f"| {figures['p50_ms_median']:.2f} | {figures['p99_ms_median']:.2f} "
            f"| {figures['errors']} |"
        )
    ratios = document["ratio_to_off"]
    lines.append("\n" + "; ".join(f"{mode} / off: {ratio}" for mode, ratio in ratios.items()))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
