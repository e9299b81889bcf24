"""Live streams over real connections: SSE and WebSocket, up to the open-file limit (issue 17b).

One ``ledgerd serve`` (PostgreSQL, ``LEDGERD_AUTH=off``: the stream path, not authentication)
and 2-4 client processes, each an asyncio loop holding its share of the connections, every
connection bound to a 127.x.y.z source address of its own range so that ephemeral ports never
run out. For each transport and each N (a fresh server each time):

- **memory**: the server's resident set (``VmRSS``) before the clients connect and once every
  connection is subscribed, the growth divided by N;
- **open all**: from the first client starting to connect to the last connection subscribed
  (SSE: its ``retry:`` line arrived; WebSocket: its ``subscribed`` message arrived);
- **fan-out latency**: one transfer posted at a time (gRPC PostTransfer), from the moment it is
  sent (``time.time_ns()`` just before the call) to each connection's receipt of its event
  (``time.time_ns()`` in the client's ``data_received``: one clock, one host), p50/p99 over
  every connection and round, and to the last connection of each round;
- **server CPU**: ``utime + stime`` of the server over each round (post and fan-out), per
  delivery.

With ``--across``, each case is measured twice: posted through the server the connections are
on, then through a second ``serve`` on the same database (fan-out across processes: the
commit's NOTIFY wakes the first server's feed, which reads the log), each with a fresh server.

Every connection is unfiltered by account (``type=ledgerd.v1.TransferPosted``, so each transfer
is one event) on one ledger. The HTTP connection cap is asked at 20,000 and lowered by
``serve`` to the open-file limit less 1,024 (18,976 here): 18,900 is the largest N measured.

Usage: python bench/stream_connections.py [--quick] [--sizes 1000,5000] [--transports sse,ws]
       [--across] [--rounds N] [--profile]
Writes bench/results/stream_connections.json. Creates and drops ``ledgerd_bench_conns``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import io
import json
import os
import platform
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import grpc
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from ledgerd.loadgen.pgbench import ServerAddress, drop_database, recreate_database
from ledgerd.loadgen.served import LEDGERD, ServedLedgerd
from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PROFILE = RESULTS / "stream_connections-profile.txt"
DATABASE = "ledgerd_bench_conns"
DEFAULT_SERVER_URL = os.environ.get(
    "LEDGERD_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
LEDGER = "conns"
EVENT_TYPE = "ledgerd.v1.TransferPosted"
# Asked for; serve lowers it to its open-file limit less 1,024 (and says so in its log).
MAX_CONNECTIONS_ASKED = 20_000
CALL_TIMEOUT_S = 60.0
COLLECT_TIMEOUT_S = 120.0
# Connections being set up at once per client process: under the listen backlog (2048).
OPENING_AT_ONCE = 200
SOURCES_PER_CLIENT = 250
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_SSE_MARKER = f"event: {EVENT_TYPE}\n".encode()
_WS_MARKER = b'"type":"event"'


# --- the client processes -------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One stream: the receive time of each of its events, and whether it is subscribed."""

    def __init__(self) -> None:
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.received: list[int] = []
        self.transport: asyncio.Transport | None = None
        # Why the server ended the stream, if it did (nothing more will arrive on it).
        self.ended: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ended is None:
            self.ended = repr(exc) if exc is not None else "closed"
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed before subscribed"))

    def _subscribed(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)


class _SseConnection(_Connection):
    def __init__(self, request: bytes) -> None:
        super().__init__()
        self._request = request
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        cast("asyncio.Transport", transport).write(self._request)

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        # A marker may straddle two reads: keep what could be its beginning.
        text = self._tail + data
        if not self.ready.done() and b"retry:" in text:
            self._subscribed()
        self.received.extend([now] * text.count(_SSE_MARKER))
        self._tail = text[-(len(_SSE_MARKER) - 1) :]


class _WsConnection(_Connection):
    """websockets' sans-I/O client: it answers the server's pings by itself."""

    def __init__(self, uri: str) -> None:
        super().__init__()
        self._protocol = ClientProtocol(parse_uri(uri))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._protocol.send_request(self._protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        self._protocol.receive_data(data)
        for event in self._protocol.events_received():
            if isinstance(event, Response) and self._protocol.handshake_exc is not None:
                refused = f"handshake refused: {event.status_code} {event.body!r:.200}"
                self.ready.set_exception(ConnectionError(refused))
            elif isinstance(event, Response) and self._protocol.state is State.OPEN:
                subscribe = {"type": "subscribe", "id": "s", "types": [EVENT_TYPE]}
                self._protocol.send_text(json.dumps(subscribe).encode())
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                if _WS_MARKER in event.data:
                    self.received.append(now)
                elif b'"subscribed"' in event.data:
                    self._subscribed()
                elif b'"error"' in event.data and not self.ready.done():
                    refused = bytes(event.data).decode(errors="replace")[:200]
                    self.ready.set_exception(ConnectionError(f"refused: {refused}"))
                elif b'"closing"' in event.data:
                    self.ended = bytes(event.data).decode(errors="replace")[:160]
        self._flush()

    def _flush(self) -> None:
        if self.transport is not None:
            for chunk in self._protocol.data_to_send():
                if chunk:
                    self.transport.write(chunk)


async def _open_all(
    transport: str, port: int, count: int, client: int
) -> tuple[list[_Connection], list[str]]:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(OPENING_AT_ONCE)
    path = f"/v1/ledgers/{LEDGER}/events"
    request = (
        f"GET {path}:stream?type={EVENT_TYPE} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Accept: text/event-stream\r\n\r\n"
    ).encode()

    async def open_one(number: int) -> _Connection:
        source = f"127.0.{client + 1}.{2 + number % SOURCES_PER_CLIENT}"
        connection: _Connection = (
            _SseConnection(request)
            if transport == "sse"
            else _WsConnection(f"ws://127.0.0.1:{port}{path}:ws")
        )
        async with gate:
            await loop.create_connection(
                lambda: connection, "127.0.0.1", port, local_addr=(source, 0)
            )
            await asyncio.wait_for(connection.ready, CALL_TIMEOUT_S)
        return connection

    outcomes = await asyncio.gather(*(open_one(n) for n in range(count)), return_exceptions=True)
    opened = [outcome for outcome in outcomes if isinstance(outcome, _Connection)]
    failures = [repr(outcome) for outcome in outcomes if isinstance(outcome, BaseException)]
    return opened, failures


async def _collect(connections: list[_Connection], events: int) -> dict[str, Any]:
    """The receive time of event number ``events`` on every connection (waiting for it)."""
    deadline = time.monotonic() + COLLECT_TIMEOUT_S
    while time.monotonic() < deadline:
        if all(len(c.received) >= events or c.ended is not None for c in connections):
            break
        await asyncio.sleep(0.005)
    times = [c.received[events - 1] for c in connections if len(c.received) >= events]
    ended = collections.Counter(c.ended for c in connections if c.ended is not None)
    return {
        "times": times,
        "missing": len(connections) - len(times),
        "ended": ended.most_common(3),
    }


async def run_client(transport: str, port: int, count: int, client: int) -> None:
    """Open ``count`` streams, report; then answer ``collect K`` lines on stdin until EOF."""
    started = time.time_ns()
    connections, failures = await _open_all(transport, port, count, client)
    report = {"started": started, "done": time.time_ns(), "opened": len(connections)}
    print(json.dumps({**report, "failures": len(failures), "failure": failures[:1]}), flush=True)
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line.strip():
            break  # EOF or "quit": the orchestrator is done (or gone)
        print(json.dumps(await _collect(connections, int(line.split()[1]))), flush=True)
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()


# --- the orchestrator -----------------------------------------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    msg = f"no VmRSS for {pid}"
    raise RuntimeError(msg)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S  # utime, stime


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class _Poster:
    """Posts one transfer at a time over gRPC, each with a key of its own."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.aio.insecure_channel(target)
        self._stub = ledger_pb2_grpc.LedgerServiceStub(self._channel)
        self._posted = 0

    async def books(self) -> None:
        await self._stub.CreateLedger(pb.CreateLedgerRequest(id=LEDGER), timeout=CALL_TIMEOUT_S)
        for account in ("bank", "alice"):
            request = pb.CreateAccountRequest(ledger=LEDGER, id=account, asset="USD/2")
            await self._stub.CreateAccount(request, timeout=CALL_TIMEOUT_S)

    async def post(self) -> tuple[int, int]:
        """One transfer: the wall clock just before sending it and once it returned."""
        self._posted += 1
        transfer = pb.TransferInput(
            idempotency_key=f"conns-{time.time_ns()}-{self._posted}",
            legs=[pb.Leg(debit_account="bank", credit_account="alice", amount=1)],
        )
        request = pb.PostTransferRequest(ledger=LEDGER, transfer=transfer)
        sent = time.time_ns()
        await self._stub.PostTransfer(request, timeout=CALL_TIMEOUT_S)
        return sent, time.time_ns()

    async def close(self) -> None:
        await self._channel.close()


@contextlib.contextmanager
def _clients(transport: str, port: int, total: int, processes: int) -> Iterator[list[Any]]:
    """The client processes, each holding its share of ``total``; killed on the way out."""
    shares = [total // processes + (1 if i < total % processes else 0) for i in range(processes)]
    started: list[subprocess.Popen[str]] = []
    try:
        for client, share in enumerate(shares):
            command = [sys.executable, __file__, "--client", transport, str(port), str(share)]
            started.append(
                subprocess.Popen(  # noqa: S603 - this script
                    [*command, str(client)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        yield started
    finally:
        for process in started:
            with contextlib.suppress(OSError):
                cast("IO[str]", process.stdin).close()
        for process in started:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _reply(process: subprocess.Popen[str]) -> dict[str, Any]:
    line = cast("IO[str]", process.stdout).readline()
    if not line:
        msg = f"client {process.pid} ended (exit {process.poll()})"
        raise RuntimeError(msg)
    return cast("dict[str, Any]", json.loads(line))


def measure_case(  # noqa: PLR0913 - one case's parameters, each with its meaning
    environment: dict[str, str],
    transport: str,
    size: int,
    rounds: int,
    log: Path,
    *,
    launcher: tuple[str, ...] = (),
    across: bool = False,
) -> dict[str, Any]:
    """One transport at one size; ``across``: transfers posted through another ``serve``."""
    processes = 2 if size <= 5000 else 4  # noqa: PLR2004 - a few thousand per asyncio client
    with contextlib.ExitStack() as servers:
        served = servers.enter_context(ServedLedgerd(environment, log, launcher))
        posting = (
            servers.enter_context(ServedLedgerd(environment, log.with_name("posting.log")))
            if across
            else served
        )
        port = int(served.http.rsplit(":", 1)[1])
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)  # the channel belongs to the loop current when made
        poster = _Poster(posting.grpc.removeprefix("grpc://"))
        try:
            # Warm: the ledger's first post on this server (caches, the pool) is not measured.
            loop.run_until_complete(poster.post())
            time.sleep(0.5)
            rss_before = _rss_kib(served.pid)
            with _clients(transport, port, size, processes) as clients:
                opened = [_reply(client) for client in clients]
                time.sleep(1.0)  # settle: the last handshakes' garbage, the loop's buffers
                rss_after = _rss_kib(served.pid)
                latencies, lasts, firsts, cpu_per_round, missing = [], [], [], [], 0
                after_reply: list[float] = []
                posts: list[float] = []
                ended: list[Any] = []
                for number in range(1, rounds + 1):
                    cpu = _cpu_s(served.pid)
                    sent, returned = loop.run_until_complete(poster.post())
                    for client in clients:
                        print(f"collect {number}", file=client.stdin, flush=True)
                    replies = [_reply(client) for client in clients]
                    cpu_per_round.append(_cpu_s(served.pid) - cpu)
                    times = [t for reply in replies for t in reply["times"]]
                    missing += sum(reply["missing"] for reply in replies)
                    ended = [reason for reply in replies for reason in reply["ended"]]
                    posts.append((returned - sent) / 1e6)
                    latencies += [(t - sent) / 1e6 for t in times]
                    after_reply += [(t - returned) / 1e6 for t in times]
                    if times:
                        lasts.append((max(times) - sent) / 1e6)
                        firsts.append((min(times) - sent) / 1e6)
                    print(
                        f"  {transport} {size}: round {number}: post {(returned - sent) / 1e6:.1f}"
                        f" ms, first {firsts[-1]:.1f} ms, last {lasts[-1]:.1f} ms",
                        flush=True,
                    )
            peak_kib = _peak_kib(served.pid)
        finally:
            loop.run_until_complete(poster.close())
            asyncio.set_event_loop(None)
            loop.close()
    subscribed = sum(reply["opened"] for reply in opened)
    failed = sum(reply["failures"] for reply in opened)
    open_s = (max(r["done"] for r in opened) - min(r["started"] for r in opened)) / 1e9
    deliveries = subscribed * rounds
    return {
        "transport": transport,
        "connections": size,
        "posted_through": "another serve" if across else "the same serve",
        "client_processes": processes,
        "subscribed": subscribed,
        "failed": failed,
        "failure": next((r["failure"][0] for r in opened if r["failure"]), None),
        "open_all_s": round(open_s, 2),
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_after_mib": round(rss_after / 1024, 1),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "kib_per_connection": round((rss_after - rss_before) / max(1, subscribed), 1),
        "rounds": rounds,
        "missing_deliveries": missing,
        # Streams the server ended during the rounds, by reason (the last round's count).
        "ended_by_server": ended,
        # The post's own time (the commit's fsync): latencies below include it.
        "post_ms_median": round(statistics.median(posts), 1) if posts else None,
        "first_ms_median": round(statistics.median(firsts), 1) if firsts else None,
        "p50_ms": round(_percentile(latencies, 0.5), 1) if latencies else None,
        "p99_ms": round(_percentile(latencies, 0.99), 1) if latencies else None,
        # From the post's reply (the commit acknowledged) instead: the fan-out alone. Negative
        # when a connection had its event before the poster had its reply.
        "after_reply_p50_ms": round(_percentile(after_reply, 0.5), 1) if after_reply else None,
        "after_reply_p99_ms": round(_percentile(after_reply, 0.99), 1) if after_reply else None,
        "last_ms_median": round(statistics.median(lasts), 1) if lasts else None,
        "last_ms_max": round(max(lasts), 1) if lasts else None,
        "server_cpu_s_per_round": [round(cpu, 3) for cpu in cpu_per_round],
        "server_cpu_us_per_delivery": round(sum(cpu_per_round) / max(1, deliveries) * 1e6, 1),
    }


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _machine() -> dict[str, Any]:
    commit = subprocess.run(  # noqa: S603 - a fixed git command
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],  # noqa: S607 - git on PATH
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "commit": commit,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        (
            "| transport | connections | posted through | subscribed | open all (s) | KiB/conn |"
            " post p50 (ms) | first p50 (ms) | p50 (ms) | p99 (ms) | after reply p50/p99 (ms) |"
            " last p50 (ms) | last max (ms) | CPU µs/delivery |"
        ),
        "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    lines += [
        f"| {r['transport']} | {r['connections']:,} | {r['posted_through']} |"
        f" {r['subscribed']:,} | {r['open_all_s']} | {r['kib_per_connection']} |"
        f" {r['post_ms_median']} | {r['first_ms_median']} | {r['p50_ms']} | {r['p99_ms']} |"
        f" {r['after_reply_p50_ms']} / {r['after_reply_p99_ms']} |"
        f" {r['last_ms_median']} | {r['last_ms_max']} | {r['server_cpu_us_per_delivery']} |"
        for r in rows
    ]
    return "\n".join(lines)


def _stop_on_sigterm(_signal: int, _frame: object) -> None:
    raise SystemExit(1)  # so that the clients, the server and the database are cleaned up


def main() -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="1,000 connections each, < 1 min")
    parser.add_argument("--sizes", help="comma-separated connection counts")
    parser.add_argument("--transports", default="sse,ws", help="sse, ws or both")
    parser.add_argument("--rounds", type=int, help="transfers posted per case (5; quick 3)")
    parser.add_argument(
        "--across",
        action="store_true",
        help="each case also with transfers posted through a second serve (cross-process)",
    )
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--output", type=Path, default=RESULTS / "stream_connections.json")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="then the largest case once more, the server under cProfile (figures not kept)",
    )
    parser.add_argument("--client", nargs=4, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.client:
        transport, port, count, client = arguments.client
        asyncio.run(run_client(transport, int(port), int(count), int(client)))
        return 0

    default_sizes = "1000" if arguments.quick else "1000,5000,10000,18900"
    sizes = [int(size) for size in (arguments.sizes or default_sizes).split(",")]
    transports = arguments.transports.split(",")
    rounds = arguments.rounds or (3 if arguments.quick else 5)
    RESULTS.mkdir(exist_ok=True)
    machine = _machine()
    began = time.monotonic()
    server = ServerAddress.from_url(arguments.server_url)
    database_url = arguments.server_url.rsplit("/", 1)[0] + f"/{DATABASE}"
    environment = {
        **os.environ,
        "LEDGERD_DATABASE_URL": database_url,
        "LEDGERD_LOG_LEVEL": "WARNING",
        # Off: this measures the stream path; bench/auth.py measures authentication.
        "LEDGERD_AUTH": "off",
        "LEDGERD_HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS_ASKED),
    }
    results: list[dict[str, Any]] = []
    asyncio.run(recreate_database(server, DATABASE))
    try:
        subprocess.run([str(LEDGERD), "migrate"], env=environment, check=True)  # noqa: S603 - our own console script
        with tempfile.TemporaryDirectory() as directory:
            log = Path(directory) / "server.log"
            with ServedLedgerd(environment, log) as served:
                asyncio.run(_books(served.grpc.removeprefix("grpc://")))
            for transport in transports:
                for size in sizes:
                    for across in (False, True) if arguments.across else (False,):
                        result = measure_case(
                            environment, transport, size, rounds, log, across=across
                        )
                        result["server_warnings"] = [
                            line for line in log.read_text().splitlines() if "http_server" in line
                        ][:3]
                        print(json.dumps(result), flush=True)
                        results.append(result)
            if arguments.profile:
                _profile(environment, transports[-1], max(sizes), rounds * 4, log)
    finally:
        asyncio.run(drop_database(server, DATABASE))
    report = {
        "quick": arguments.quick,
        "machine": machine,
        "load_average_after": [round(load, 2) for load in os.getloadavg()],
        "elapsed_s": round(time.monotonic() - began),
        "results": results,
    }
    arguments.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{_table(results)}\n\n{arguments.output} ({report['elapsed_s']} s)")
    return 0


def _profile(
    environment: dict[str, str], transport: str, size: int, rounds: int, log: Path
) -> None:
    """The case once more under cProfile (the whole server: start, opening and fan-out)."""
    raw = RESULTS / "stream_connections.prof"
    launcher = (sys.executable, "-m", "cProfile", "-o", str(raw))
    measure_case(environment, transport, size, rounds, log, launcher=launcher)
    text = io.StringIO()
    stats = pstats.Stats(str(raw), stream=text)
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(60)
    PROFILE.write_text(f"{transport}, {size} connections, {rounds} rounds\n{text.getvalue()}")
    raw.unlink()
    print(f"profile: {PROFILE}", flush=True)


async def _books(target: str) -> None:
    poster = _Poster(target)
    try:
        await poster.books()
    finally:
        await poster.close()


if __name__ == "__main__":
    sys.exit(main())
