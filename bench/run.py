"""``make bench``: the load benchmarks end to end on a fresh PostgreSQL database.

Creates a database, migrates it, starts ``ledgerd serve`` on free ports, then runs
``ledgerd bench`` once per scenario below, each with ``--compare-pgbench`` (pgbench's naive
ledger on the same server, with the same clients, right before) and its invariant checks over
the API; runs ``ledgerd verify`` once at the end over everything posted; writes
bench/results/<scenario>.json and bench/results/summary.md; stops the server and drops the
database. Every figure comes from the same machine in the same run.

    python bench/run.py [--duration 10s] [--only grpc-hot-batch100] [--server-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from ledgerd.loadgen.pgbench import ServerAddress, drop_database, recreate_database

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
LEDGERD = Path(sys.executable).parent / "ledgerd"
DEFAULT_SERVER_URL = os.environ.get(
    "LEDGERD_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
DATABASE = "ledgerd_bench"
LEDGER = "bench"
START_TIMEOUT_S = 60.0
EXIT_ERROR = 2  # ledgerd bench: the run could not be done
RETRIES = 1
RETRY_AFTER_S = 5.0
STOP_TIMEOUT_S = 30.0
_GRPC_LINE = re.compile(r"^gRPC\s+(\S+):(\d+)", re.MULTILINE)
_REST_LINE = re.compile(r"^REST\s+http://(\S+):(\d+)/", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    transport: str  # "grpc" or "http"
    workload: str
    clients: int
    batch: int = 1
    trivial: bool = False


SCENARIOS = (
    # The client's own ceiling against a trivial endpoint, with the same machinery.
    Scenario("grpc-trivial", "grpc", "uniform", clients=64, trivial=True),
    Scenario("rest-trivial", "http", "uniform", clients=64, trivial=True),
    Scenario("grpc-hot-batch100", "grpc", "hot", clients=8, batch=100),
    Scenario("grpc-hot-single", "grpc", "hot", clients=64),
    Scenario("rest-hot-single", "http", "hot", clients=64),
    Scenario("grpc-uniform-batch100", "grpc", "uniform", clients=8, batch=100),
    Scenario("grpc-uniform-single", "grpc", "uniform", clients=64),
    Scenario("rest-uniform-single", "http", "uniform", clients=64),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--duration", default="10s", help="each run's (and pgbench's) duration")
    parser.add_argument("--trivial-duration", default="5s")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=1, help="client processes per run")
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL, help="a PostgreSQL server")
    parser.add_argument("--server-log-level", default="WARNING", help="the server's log level")
    parser.add_argument("--only", action="append", help="run only these scenarios (repeatable)")
    arguments = parser.parse_args()
    chosen = [s for s in SCENARIOS if not arguments.only or s.name in arguments.only]
    if not chosen:
        parser.error(f"no such scenario; choose from {[s.name for s in SCENARIOS]}")

    server = ServerAddress.from_url(arguments.server_url)
    database_url = (
        f"postgresql+asyncpg://{server.user}@{server.host}:{server.port}/{DATABASE}"
        if server.password is None
        else arguments.server_url.rsplit("/", 1)[0] + f"/{DATABASE}"
    )
    RESULTS.mkdir(exist_ok=True)
    asyncio.run(recreate_database(server, DATABASE))
    environment = {
        **os.environ,
        "LEDGERD_DATABASE_URL": database_url,
        "LEDGERD_LOG_LEVEL": arguments.server_log_level,
        "PYTHONUNBUFFERED": "1",
    }
    # A dozen processes start here (server, bench runs, their client processes, verifies);
    # where bytecode caching is off they would each compile the libraries again, for seconds.
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    failures = 0
    began = time.monotonic()
    try:
        subprocess.run([LEDGERD, "migrate"], env=environment, check=True)  # noqa: S603 - ours
        with _Server(environment, RESULTS / "server.log") as served:
            for scenario in chosen:
                failures += _run_scenario(scenario, served, database_url, arguments)
        verified = _verify(environment)
        failures += not verified.startswith("OK")
    finally:
        asyncio.run(drop_database(server, DATABASE))
    summary = _summary([s.name for s in chosen]) + f"\n`ledgerd verify {LEDGER}`: {verified}\n"
    (RESULTS / "summary.md").write_text(summary)
    print(f"\n{summary}\nall figures in {RESULTS}/ ({time.monotonic() - began:.0f} s)")
    return 1 if failures else 0


class _Server:
    """``ledgerd serve`` in the background on free ports; SIGTERM and wait on exit."""

    def __init__(self, environment: dict[str, str], log: Path) -> None:
        self._environment = {
            **environment,
            "LEDGERD_GRPC_ADDRESS": "127.0.0.1:0",
            "LEDGERD_HTTP_ADDRESS": "127.0.0.1:0",
        }
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None
        self.grpc = ""
        self.http = ""

    def __enter__(self) -> Self:
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(  # noqa: S603 - our own console script
                [LEDGERD, "serve"], env=self._environment, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self._log.read_text(errors="replace")
            grpc, rest = _GRPC_LINE.search(text), _REST_LINE.search(text)
            if grpc and rest:
                self.grpc = f"grpc://{grpc.group(1)}:{grpc.group(2)}"
                self.http = f"http://{rest.group(1)}:{rest.group(2)}"
                print(f"ledgerd serve: {self.grpc} {self.http} (log: {self._log})")
                return self
            if self._process.poll() is not None:
                break
            time.sleep(0.1)
        self.__exit__(None, None, None)
        msg = f"ledgerd serve did not start; see {self._log}"
        raise RuntimeError(msg)

    def __exit__(self, *_: object) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _run_scenario(
    scenario: Scenario, served: _Server, database_url: str, arguments: argparse.Namespace
) -> int:
    """Run one scenario; 1 if it failed (an invariant, or the run itself), else 0."""
    output = RESULTS / f"{scenario.name}.json"
    output.unlink(missing_ok=True)
    command = [
        str(LEDGERD),
        "bench",
        f"--target={served.grpc if scenario.transport == 'grpc' else served.http}",
        f"--workload={scenario.workload}",
        f"--clients={scenario.clients}",
        f"--processes={min(arguments.processes, scenario.clients)}",
        f"--output={output}",
    ]
    if scenario.trivial:
        command += ["--trivial", f"--duration={arguments.trivial_duration}"]
    else:
        command += [
            f"--batch={scenario.batch}",
            f"--duration={arguments.duration}",
            f"--accounts={arguments.accounts}",
            # One ledger for every scenario: its 10,000 accounts are set up once (the workload
            # only picks which of them a transfer touches), and `ledgerd verify` after each
            # run re-checks everything posted so far.
            f"--ledger={LEDGER}",
            f"--database-url={database_url}",
            "--compare-pgbench",
            # Once at the end instead: it replays the whole ledger, which grows every run.
            "--no-verify",
        ]
    returncode = EXIT_ERROR
    for attempt in range(1 + RETRIES):
        print(f"\n== {scenario.name}: ledgerd {' '.join(command[1:])}", flush=True)
        completed = subprocess.run(command, check=False)  # noqa: S603 - our own console script
        returncode = completed.returncode
        if returncode != EXIT_ERROR or attempt == RETRIES:
            break
        # Exit 2: the run could not be done, e.g. PostgreSQL had no connection left for pgbench
        # while other work shared the server. An invariant failure (exit 1) is never retried.
        print(f"   {scenario.name} could not run; once more in {RETRY_AFTER_S:.0f} s", flush=True)
        time.sleep(RETRY_AFTER_S)
    return 0 if returncode == 0 else 1


def _verify(environment: dict[str, str]) -> str:
    """``ledgerd verify`` over the ledger every scenario posted to: "OK ..." or the problems."""
    print(f"\n== ledgerd verify {LEDGER}", flush=True)
    completed = subprocess.run(  # noqa: S603 - our own console script
        [LEDGERD, "verify", LEDGER],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    print(completed.stdout + completed.stderr, end="")
    lines = completed.stdout.strip().splitlines()
    head = lines[0] if lines else "(no output)"
    if completed.returncode == 0:
        return f"OK - {head}"
    return f"FAILED (exit {completed.returncode}) - {' / '.join(lines[-3:]) or completed.stderr}"


def _summary(names: list[str]) -> str:
    lines = [
        (
            "| scenario | clients x batch | transfers/s | p50 ms | p99 ms | errors "
            "| pgbench naive transfers/s | ratio | invariants |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            lines.append(f"| {name} | | | | | | | | run failed |")
            continue
        document: dict[str, Any] = json.loads(path.read_text())
        config, result = document["config"], document["result"]
        pgbench = document["pgbench"]
        errors = sum(result["errors"].values())
        ratio = document["ratio_to_pgbench"]
        verdict = "-" if config["trivial"] else ("ok" if document["invariants"]["ok"] else "FAIL")
        lines.append(
            f"| {name} | {config['clients']} x {config['batch']} "
            f"| {result['transfers_per_s']:,.0f} | {result['latency_ms']['p50']:.1f} "
            f"| {result['latency_ms']['p99']:.1f} | {errors} "
            f"| {'-' if pgbench is None else format(pgbench['transfers_per_s'], ',.0f')} "
            f"| {'-' if ratio is None else format(ratio, '.2f')} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
