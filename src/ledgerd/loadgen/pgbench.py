"""The database's own limit: pgbench running the SQL a naive ledger would, on the same server.

A naive ledger posts a transfer as: lock both accounts (``SELECT … FOR UPDATE`` in id order,
so two transfers never deadlock), insert the transfer, insert its two entries, update both
accounts' totals, commit. Batched, it does the same for K transfers in one transaction,
locking every account of the batch up front in id order. The scripts below are that, as
pgbench runs it (``-M prepared``, like any driver with prepared statements), against a schema
of its own in a scratch database on the ledger's PostgreSQL server. ``bench/pgbench/`` holds
copies of these texts for running pgbench by hand; a test keeps them identical.

Workloads (pgbench variables, ``-D``): ``mode`` 0 uniform (two distinct random accounts of
``accounts``), 1 hot (account 1 in every transfer), 2 zipf (``random_zipfian`` with exponent
``zipf``, scattered over the ids by ``permute``).
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg

from ledgerd.loadgen.config import Workload

SCRATCH_DATABASE = "ledgerd_pgbench"
_MODES = {Workload.UNIFORM: 0, Workload.HOT: 1, Workload.ZIPF: 2}
# pgbench's connection set-up and its own report, beyond the measured duration.
_PGBENCH_SLACK_S = 120.0
_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
_PROCESSED = re.compile(r"^number of transactions actually processed: (\d+)", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)
# Reported with every result: a figure without them says little.
_SETTINGS = ("server_version", "fsync", "synchronous_commit", "shared_buffers", "max_connections")
_LATENCY = re.compile(r"^latency average = ([0-9.]+) ms", re.MULTILINE)

SETUP_SQL = """\
-- The naive ledger's schema (run by `ledgerd bench --compare-pgbench` in a scratch database),
-- followed by: INSERT INTO naive_accounts (id) SELECT generate_series(1, :accounts); ANALYZE;
-- Accounts keep running totals; each transfer has an idempotency key and two entries.
DROP TABLE IF EXISTS naive_entries, naive_transfers, naive_accounts;
CREATE TABLE naive_accounts (
    id bigint PRIMARY KEY,
    debits bigint NOT NULL DEFAULT 0,
    credits bigint NOT NULL DEFAULT 0,
    version bigint NOT NULL DEFAULT 0
);
CREATE TABLE naive_transfers (
    id bigserial PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    debit_account bigint NOT NULL REFERENCES naive_accounts,
    credit_account bigint NOT NULL REFERENCES naive_accounts,
    amount bigint NOT NULL CHECK (amount > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE naive_entries (
    transfer_id bigint NOT NULL REFERENCES naive_transfers,
    account_id bigint NOT NULL REFERENCES naive_accounts,
    side char(1) NOT NULL CHECK (side IN ('D', 'C')),
    amount bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (transfer_id, side)
);
CREATE INDEX naive_entries_account ON naive_entries (account_id, created_at);
"""

ADD_ACCOUNTS_SQL = "INSERT INTO naive_accounts (id) SELECT generate_series(1, $1::bigint)"

# Two distinct accounts a, b (u: another account than a; z, w: zipf draws, made in every mode
# since they are cheap), a random direction s, an amount.
_PICK = """\
\\set z{i} 1 + permute(random_zipfian(0, :accounts - 1, :zipf), :accounts)
\\set w{i} 1 + permute(random_zipfian(0, :accounts - 1, :zipf), :accounts)
\\set a{i} CASE WHEN :mode = 1 THEN 1 WHEN :mode = 2 THEN :z{i} ELSE random(1, :accounts) END
\\set u{i} 1 + (:a{i} + random(0, :accounts - 2)) % :accounts
\\set b{i} CASE WHEN :mode = 2 THEN :w{i} ELSE :u{i} END
\\set b{i} CASE WHEN :b{i} = :a{i} THEN 1 + :b{i} % :accounts ELSE :b{i} END
\\set s{i} random(0, 1)
\\set dr{i} CASE WHEN :s{i} = 1 THEN :a{i} ELSE :b{i} END
\\set cr{i} CASE WHEN :s{i} = 1 THEN :b{i} ELSE :a{i} END
\\set amt{i} random(1, 10000)
"""

_POST = """\
INSERT INTO naive_transfers (idempotency_key, debit_account, credit_account, amount)
    VALUES (gen_random_uuid()::text, :dr{i}, :cr{i}, :amt{i}) RETURNING id \\gset t{i}_
INSERT INTO naive_entries (transfer_id, account_id, side, amount)
    VALUES (:t{i}_id, :dr{i}, 'D', :amt{i}), (:t{i}_id, :cr{i}, 'C', :amt{i});
UPDATE naive_accounts SET debits = debits + :amt{i}, version = version + 1 WHERE id = :dr{i};
UPDATE naive_accounts SET credits = credits + :amt{i}, version = version + 1 WHERE id = :cr{i};
"""


def naive_script(per_transaction: int) -> str:
    """The pgbench script posting ``per_transaction`` transfers in each transaction."""
    if per_transaction < 1:
        msg = "at least one transfer per transaction"
        raise ValueError(msg)
    numbers = range(1, per_transaction + 1)
    accounts = ", ".join(f":dr{i}, :cr{i}" for i in numbers)
    return "".join(
        [
            (
                f"-- A naive ledger posting {per_transaction} transfer(s) per transaction.\n"
                "-- Needs -D mode=0|1|2 (uniform|hot|zipf) -D accounts=N -D zipf=S (> 1).\n"
                "-- Generated by ledgerd.loadgen.pgbench.naive_script; "
                "`python bench/pgbench.py --write-scripts` rewrites it.\n"
            ),
            *(_PICK.format(i=i) for i in numbers),
            "BEGIN;\n",
            (
                f"SELECT id, debits, credits FROM naive_accounts WHERE id IN ({accounts})\n"  # noqa: S608 - pgbench variables, not data
                "    ORDER BY id FOR UPDATE;\n"
            ),
            *(_POST.format(i=i) for i in numbers),
            "COMMIT;\n",
        ]
    )


def write_scripts(directory: Path, per_transaction: tuple[int, ...] = (1, 100)) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "setup.sql"]
    written[0].write_text(SETUP_SQL)
    for count in per_transaction:
        path = directory / f"naive_{count}.sql"
        path.write_text(naive_script(count))
        written.append(path)
    return written


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """A PostgreSQL server from a URL, as libpq (pgbench) and asyncpg take it."""

    host: str
    port: int
    user: str
    password: str | None
    database: str

    @classmethod
    def from_url(cls, url: str) -> ServerAddress:
        parts = urlsplit(url)
        if not parts.scheme.startswith("postgres"):
            msg = f"not a PostgreSQL URL: {parts.scheme}://..."
            raise ValueError(msg)
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username or "postgres"),
            password=None if parts.password is None else unquote(parts.password),
            database=unquote(parts.path.lstrip("/")) or "postgres",
        )

    async def connect(self, database: str | None = None) -> asyncpg.Connection:
        return await asyncpg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database or self.database,
        )


@dataclass(frozen=True, slots=True)
class PgbenchResult:
    workload: str
    clients: int
    threads: int
    per_transaction: int
    duration_s: float
    transactions: int
    failed_transactions: int
    tps: float
    transfers_per_s: float
    latency_avg_ms: float | None
    debits: int
    credits: int
    command: str
    server_settings: dict[str, str]

    @property
    def balanced(self) -> bool:
        return self.debits == self.credits

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "balanced": self.balanced}


class PgbenchError(RuntimeError):
    pass


def pgbench_executable() -> str:
    found = shutil.which("pgbench")
    if found is None:
        msg = "pgbench is not on PATH (Debian: apt-get install postgresql-client)"
        raise PgbenchError(msg)
    return found


async def run_pgbench(  # noqa: PLR0913 - each is one of pgbench's knobs, all keyword-only
    server_url: str,
    *,
    workload: Workload,
    accounts: int,
    clients: int,
    per_transaction: int,
    duration_s: float,
    zipf_exponent: float = 1.1,
    database: str = SCRATCH_DATABASE,
    keep: bool = False,
) -> PgbenchResult:
    """Set up the naive schema in a fresh ``database``, run pgbench, check debits = credits."""
    server = ServerAddress.from_url(server_url)
    executable = pgbench_executable()
    await recreate_database(server, database)
    try:
        settings = await _set_up_schema(server, database, accounts)
        threads = max(1, min(clients, os.cpu_count() or 1))
        with tempfile.TemporaryDirectory(prefix="ledgerd-pgbench-") as directory:
            script = Path(directory) / f"naive_{per_transaction}.sql"
            script.write_text(naive_script(per_transaction))
            arguments = [
                executable,
                "--no-vacuum",
                "--protocol=prepared",
                f"--client={clients}",
                f"--jobs={threads}",
                f"--time={max(1, round(duration_s))}",
                f"--define=mode={_MODES[workload]}",
                f"--define=accounts={accounts}",
                f"--define=zipf={zipf_exponent}",
                f"--file={script}",
                f"--host={server.host}",
                f"--port={server.port}",
                f"--username={server.user}",
                database,
            ]
            output = await _run(arguments, server.password, duration_s + _PGBENCH_SLACK_S)
        debits, credits_ = await _totals(server, database)
    finally:
        if not keep:
            await drop_database(server, database)
    tps = _parse_float(_TPS, output, "tps")
    latency = _LATENCY.search(output)
    failed = _FAILED.search(output)
    return PgbenchResult(
        workload=str(workload),
        clients=clients,
        threads=threads,
        per_transaction=per_transaction,
        duration_s=max(1, round(duration_s)),
        transactions=int(_parse_float(_PROCESSED, output, "transactions processed")),
        failed_transactions=int(failed.group(1)) if failed else 0,
        tps=tps,
        transfers_per_s=tps * per_transaction,
        latency_avg_ms=float(latency.group(1)) if latency else None,
        debits=debits,
        credits=credits_,
        command=shlex.join(
            [
                "pgbench",
                *(a for a in arguments[1:-1] if not a.startswith("--file=")),
                f"--file=bench/pgbench/naive_{per_transaction}.sql",
                database,
            ]
        ),
        server_settings=settings,
    )


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def recreate_database(server: ServerAddress, database: str) -> None:
    connection = await server.connect()
    try:
        # FORCE: a previous run interrupted mid-way may have left pgbench sessions behind.
        await connection.execute(
            f"DROP DATABASE IF EXISTS {quote_identifier(database)} WITH (FORCE)"
        )
        await connection.execute(f"CREATE DATABASE {quote_identifier(database)} TEMPLATE template0")
    finally:
        await connection.close()


async def drop_database(server: ServerAddress, database: str) -> None:
    connection = await server.connect()
    try:
        await connection.execute(
            f"DROP DATABASE IF EXISTS {quote_identifier(database)} WITH (FORCE)"
        )
    finally:
        await connection.close()


async def _set_up_schema(server: ServerAddress, database: str, accounts: int) -> dict[str, str]:
    """Create the naive schema; return the server settings that decide its speed."""
    connection = await server.connect(database)
    try:
        await connection.execute(SETUP_SQL)
        await connection.execute(ADD_ACCOUNTS_SQL, accounts)
        await connection.execute("ANALYZE")
        return {name: str(await connection.fetchval(f"SHOW {name}")) for name in _SETTINGS}
    finally:
        await connection.close()


async def _totals(server: ServerAddress, database: str) -> tuple[int, int]:
    connection = await server.connect(database)
    try:
        row = await connection.fetchrow(
            "SELECT coalesce(sum(debits), 0)::bigint AS debits, "
            "coalesce(sum(credits), 0)::bigint AS credits FROM naive_accounts"
        )
    finally:
        await connection.close()
    if row is None:  # an aggregate always returns its row
        msg = "no totals from naive_accounts"
        raise PgbenchError(msg)
    return int(row["debits"]), int(row["credits"])


async def _run(arguments: list[str], password: str | None, timeout_s: float) -> str:
    environment = dict(os.environ)
    if password is not None:
        environment["PGPASSWORD"] = password
    process = await asyncio.create_subprocess_exec(
        *arguments,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        msg = f"pgbench did not finish in {timeout_s:.0f} s"
        raise PgbenchError(msg) from None
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise PgbenchError(f"pgbench exited {process.returncode}:\n{text[-2000:]}")
    return text


def _parse_float(pattern: re.Pattern[str], output: str, what: str) -> float:
    match = pattern.search(output)
    if match is None:
        raise PgbenchError(f"no {what} in pgbench's report:\n{output[-2000:]}")
    return float(match.group(1))
