"""What the cheapest call costs a server on this machine: the floor under every API figure.

Runs ``ledgerd bench --trivial`` (64 clients) against three servers in turn and reads each
server process's CPU time from /proc before and after the run (Linux only):

- a bare ``grpc.aio`` server holding nothing but grpcio's own health servicer, started by
  this script: what any Python gRPC service pays per call before doing anything;
- ``ledgerd serve``'s gRPC health check: the same servicer behind ledgerd's interceptor
  (request id, deadline, access log, error mapping);
- ``ledgerd serve``'s REST ``GET /healthz`` (uvicorn and the gateway's ASGI app).

The server's CPU per call bounds its single-call rate: one core divided by it. On 2 cores the
load generator and the database need the rest. Writes bench/results/server_floor.{json,md}.

    python bench/server_floor.py [--duration 8s]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ledgerd.loadgen.served import LEDGERD, ServedLedgerd

RESULTS = Path(__file__).resolve().parent / "results"
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_BARE_START_TIMEOUT_S = 30.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--duration", default="8s", help="each run's duration")
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)  # the child's role
    arguments = parser.parse_args()
    if arguments.serve_bare is not None:
        asyncio.run(_serve_bare(arguments.serve_bare))
        return 0

    RESULTS.mkdir(exist_ok=True)
    rows: list[dict[str, object]] = []
    port = _free_port()
    duration = arguments.duration
    with _BareServer(port) as bare_pid:
        rows.append(
            _measure("bare grpc.aio, health check", f"grpc://127.0.0.1:{port}", bare_pid, duration)
        )
    with tempfile.TemporaryDirectory() as directory:
        environment = {
            **os.environ,
            "LEDGERD_DATABASE_URL": f"sqlite+aiosqlite:///{directory}/floor.db",
            "LEDGERD_LOG_LEVEL": "WARNING",
            # Off: it times the public health check, which no token guards either way.
            "LEDGERD_AUTH": "off",
        }
        environment.pop("PYTHONDONTWRITEBYTECODE", None)
        with ServedLedgerd(environment, Path(directory) / "server.log") as served:
            for name, target in (
                ("ledgerd serve, gRPC health check", served.grpc),
                ("ledgerd serve, REST GET /healthz", served.http),
            ):
                rows.append(_measure(name, target, served.pid, duration))
    table = _table(rows)
    (RESULTS / "server_floor.json").write_text(json.dumps(rows, indent=2) + "\n")
    (RESULTS / "server_floor.md").write_text(table)
    print(f"\n{table}")
    return 0


def _measure(name: str, target: str, pid: int, duration: str) -> dict[str, object]:
    output = RESULTS / "server_floor_run.json"
    before = _cpu_seconds(pid)
    subprocess.run(  # noqa: S603 - our own console script
        [
            str(LEDGERD),
            "bench",
            f"--target={target}",
            "--trivial",
            "--clients=64",
            f"--duration={duration}",
            f"--output={output}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    used = _cpu_seconds(pid) - before
    result = json.loads(output.read_text())["result"]
    calls = int(result["requests"]) - int(result["failed_requests"])
    row: dict[str, object] = {
        "server": name,
        "calls_per_s": float(result["requests_per_s"]),
        "server_cpu_us_per_call": used * 1e6 / calls,
        "calls": calls,
        "duration": duration,
    }
    print(f"{name}: {row['calls_per_s']:,.0f} calls/s, {row['server_cpu_us_per_call']:.0f} µs")
    return row


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, every thread included (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def _table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| server (64 clients, trivial call) | calls/s | server CPU per call, µs |",
        "|---|---|---|",
    ]
    lines += [
        f"| {row['server']} | {row['calls_per_s']:,.0f} | {row['server_cpu_us_per_call']:,.0f} |"
        for row in rows
    ]
    return "\n".join(lines) + "\n"


async def _serve_bare(port: int) -> None:
    import grpc  # noqa: PLC0415 - only the child process serves
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: PLC0415

    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("serving", flush=True)
    await server.wait_for_termination()


class _BareServer:
    """A child process of this script serving only grpcio's health servicer."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> int:
        self._process = subprocess.Popen(  # noqa: S603 - this very script
            [sys.executable, __file__, "--serve-bare", str(self._port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None  # noqa: S101 - PIPE was asked for
        if self._process.stdout.readline().strip() != "serving":
            self.__exit__()
            msg = "the bare gRPC server did not start"
            raise RuntimeError(msg)
        return self._process.pid

    def __exit__(self, *_: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(_BARE_START_TIMEOUT_S)


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


if __name__ == "__main__":
    began = time.monotonic()
    status = main()
    print(f"({time.monotonic() - began:.0f} s)")
    sys.exit(status)
