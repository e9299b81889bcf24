"""``make bench``: the load benchmarks end to end on a fresh PostgreSQL database.

Creates a database, migrates it, starts ``ledgerd serve`` on free ports, then runs
``ledgerd bench`` once per scenario below, each with ``--compare-pgbench`` (pgbench's naive
ledger on the same server, with the same clients, right before) and its invariant checks over
the API; runs ``ledgerd verify`` once at the end over everything posted; writes
bench/results/<scenario>.json and bench/results/summary.md; stops the server and drops the
database. Every figure comes from the same machine in the same run. With ``--sqlite`` the
same scenarios run on the embedded database (a fresh file in bench/results/sqlite/, whose
results land there too), for reference: no pgbench.

    python bench/run.py [--duration 10s] [--only grpc-hot-batch100] [--server-url URL] [--sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledgerd.loadgen.bench import RUNNING
from ledgerd.loadgen.config import parse_duration
from ledgerd.loadgen.pgbench import ServerAddress, drop_database, recreate_database
from ledgerd.loadgen.served import LEDGERD, BenchClient, ServedLedgerd

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_SERVER_URL = os.environ.get(
    "LEDGERD_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
DATABASE = "ledgerd_bench"
LEDGER = "bench"
EXIT_ERROR = 2  # ledgerd bench: the run could not be done
RETRIES = 1
RETRY_AFTER_S = 5.0
# A load run beside a scenario runs this long before it (once its set-up is done).
BESIDE_LEAD_S = 3.0
BESIDE_SETUP_LIMIT_S = 300.0


@dataclass(frozen=True)
class Scenario:
    name: str
    transport: str  # "grpc" or "http"
    workload: str
    clients: int
    batch: int = 1
    trivial: bool = False
    ledger: str = LEDGER
    accounts: int | None = None
    """Accounts of its ledger (default: --accounts)."""
    pgbench: bool = True
    beside: Scenario | None = None
    """Another load on the server all through the measured run (its figures are not kept)."""


@dataclass(frozen=True)
class _Server:
    """The served ledgerd, and how ``ledgerd bench`` authenticates to it."""

    served: ServedLedgerd
    client: BenchClient
    environment: dict[str, str]
    """``ledgerd bench``'s environment: the client secret in it, off the command line."""


# Ten-thousand-transfer batches posted back to back into one ledger, beside the measured load
# on another: does one caller's big work hold up everyone else's small work (issue 11)?
BULK = Scenario(
    "bulk-batch10000",
    "grpc",
    "uniform",
    clients=2,
    batch=10_000,
    ledger="bulk",
    accounts=1_000,
    pgbench=False,
)


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
    # Fairness: single transfers on one ledger alone, then with BULK beside on another ledger.
    Scenario("grpc-single-alone", "grpc", "uniform", clients=16, pgbench=False),
    Scenario("grpc-single-beside-bulk", "grpc", "uniform", clients=16, pgbench=False, beside=BULK),
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
    parser.add_argument(
        "--sqlite",
        action="store_true",
        help="the embedded SQLite database (WAL, durable commits) instead; no pgbench beside",
    )
    arguments = parser.parse_args()
    chosen = [s for s in SCENARIOS if not arguments.only or s.name in arguments.only]
    if not chosen:
        parser.error(f"no such scenario; choose from {[s.name for s in SCENARIOS]}")

    results = RESULTS / "sqlite" if arguments.sqlite else RESULTS
    results.mkdir(parents=True, exist_ok=True)
    database = _SqliteDatabase(results) if arguments.sqlite else _PostgresDatabase(arguments)
    database_url = database.create()
    environment = {
        **os.environ,
        "LEDGERD_DATABASE_URL": database_url,
        "LEDGERD_LOG_LEVEL": arguments.server_log_level,
        # Explicit, so that the figures do not depend on the default: every call is
        # authenticated, as in production.
        "LEDGERD_AUTH": "required",
        "PYTHONUNBUFFERED": "1",
    }
    # A dozen processes start here (server, bench runs, their client processes, verifies);
    # where bytecode caching is off they would each compile the libraries again, for seconds.
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    failures = 0
    began = time.monotonic()
    try:
        subprocess.run([LEDGERD, "migrate"], env=environment, check=True)  # noqa: S603 - ours
        # Each `ledgerd bench` gets its tokens as this client (client-credentials grant).
        client = BenchClient.create(environment)
        with ServedLedgerd(environment, results / "server.log") as served:
            print(f"ledgerd serve: {served.grpc} {served.http}", flush=True)
            server = _Server(served, client, client.bench_environment(dict(os.environ)))
            for scenario in chosen:
                failures += _run_scenario(scenario, server, database, results, arguments)
        verified = _verify(environment)
        failures += not verified.startswith("OK")
    finally:
        database.drop()
    summary = (
        _summary(results, [s.name for s in chosen]) + f"\n`ledgerd verify {LEDGER}`: {verified}\n"
    )
    (results / "summary.md").write_text(summary)
    print(f"\n{summary}\nall figures in {results}/ ({time.monotonic() - began:.0f} s)")
    return 1 if failures else 0


class _PostgresDatabase:
    """A fresh database on the PostgreSQL server, dropped at the end; pgbench runs beside."""

    compare_pgbench = True

    def __init__(self, arguments: argparse.Namespace) -> None:
        self._server = ServerAddress.from_url(arguments.server_url)
        self.url = (
            f"postgresql+asyncpg://{self._server.user}@{self._server.host}:{self._server.port}"
            f"/{DATABASE}"
            if self._server.password is None
            else arguments.server_url.rsplit("/", 1)[0] + f"/{DATABASE}"
        )

    def create(self) -> str:
        asyncio.run(recreate_database(self._server, DATABASE))
        return self.url

    def drop(self) -> None:
        asyncio.run(drop_database(self._server, DATABASE))


class _SqliteDatabase:
    """A fresh embedded database file (with its WAL), deleted at the end; no pgbench."""

    compare_pgbench = False

    def __init__(self, directory: Path) -> None:
        self._path = directory / f"{DATABASE}.db"
        self.url = f"sqlite+aiosqlite:///{self._path}"

    def create(self) -> str:
        self.drop()
        return self.url

    def drop(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self._path}{suffix}").unlink(missing_ok=True)


def _bench_command(  # noqa: PLR0913, PLR0917 - a scenario's run: what, where, how long
    scenario: Scenario,
    server: _Server,
    database: _PostgresDatabase | _SqliteDatabase,
    output: Path,
    arguments: argparse.Namespace,
    duration: str,
) -> list[str]:
    served = server.served
    command = [
        str(LEDGERD),
        "bench",
        f"--target={served.grpc if scenario.transport == 'grpc' else served.http}",
        *server.client.bench_options(served.token_url),
        f"--workload={scenario.workload}",
        f"--clients={scenario.clients}",
        f"--processes={min(arguments.processes, scenario.clients)}",
        f"--output={output}",
    ]
    if scenario.trivial:
        return [*command, "--trivial", f"--duration={arguments.trivial_duration}"]
    command += [
        f"--batch={scenario.batch}",
        f"--duration={duration}",
        f"--accounts={scenario.accounts or arguments.accounts}",
        # One ledger for (nearly) every scenario: its 10,000 accounts are set up once (the
        # workload only picks which of them a transfer touches), and `ledgerd verify` at the
        # end re-checks everything posted.
        f"--ledger={scenario.ledger}",
        f"--database-url={database.url}",
        # Once at the end instead: it replays the whole ledger, which grows every run.
        "--no-verify",
    ]
    if database.compare_pgbench and scenario.pgbench:
        command.append("--compare-pgbench")
    return command


def _run_scenario(
    scenario: Scenario,
    server: _Server,
    database: _PostgresDatabase | _SqliteDatabase,
    results: Path,
    arguments: argparse.Namespace,
) -> int:
    """Run one scenario; 1 if it failed (an invariant, or the run itself), else 0."""
    output = results / f"{scenario.name}.json"
    output.unlink(missing_ok=True)
    command = _bench_command(scenario, server, database, output, arguments, arguments.duration)
    returncode = EXIT_ERROR
    for attempt in range(1 + RETRIES):
        print(f"\n== {scenario.name}: ledgerd {' '.join(command[1:])}", flush=True)
        with _beside(scenario.beside, server, database, results, arguments):
            completed = subprocess.run(command, env=server.environment, check=False)  # noqa: S603
        returncode = completed.returncode
        if returncode != EXIT_ERROR or attempt == RETRIES:
            break
        # Exit 2: the run could not be done, e.g. PostgreSQL had no connection left for pgbench
        # while other work shared the server. An invariant failure (exit 1) is never retried.
        print(f"   {scenario.name} could not run; once more in {RETRY_AFTER_S:.0f} s", flush=True)
        time.sleep(RETRY_AFTER_S)
    return 0 if returncode == 0 else 1


@contextlib.contextmanager
def _beside(
    load: Scenario | None,
    server: _Server,
    database: _PostgresDatabase | _SqliteDatabase,
    results: Path,
    arguments: argparse.Namespace,
) -> Iterator[None]:
    """Run ``load`` in the background from before the block until after it."""
    if load is None:
        yield
        return
    # Long enough to outlast the measured run, set-up included; stopped when that is over.
    duration = f"{parse_duration(arguments.duration) * 3 + 60:g}s"
    output = results / f"{load.name}.json"
    command = _bench_command(load, server, database, output, arguments, duration)
    print(f"   beside it: ledgerd {' '.join(command[1:])}", flush=True)
    log = results / f"{load.name}.log"
    with log.open("wb") as written:
        process = subprocess.Popen(  # noqa: S603 - our own script
            command, env=server.environment, stdout=written, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + BESIDE_SETUP_LIMIT_S
        while RUNNING not in log.read_text(errors="replace"):  # its accounts set up
            if process.poll() is not None or time.monotonic() > deadline:
                msg = f"{load.name} did not start its load: see {log}"
                raise RuntimeError(msg)
            time.sleep(0.2)
        time.sleep(BESIDE_LEAD_S)  # its batches flowing
        yield
    finally:
        process.send_signal(signal.SIGINT)  # stops the load; its figures are not kept
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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


def _summary(results: Path, names: list[str]) -> str:
    lines = [
        (
            "| scenario | clients x batch | transfers/s | p50 ms | p99 ms | errors "
            "| pgbench naive transfers/s | ratio | invariants |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        path = results / f"{name}.json"
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
