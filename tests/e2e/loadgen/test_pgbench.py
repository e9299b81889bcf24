"""pgbench's naive ledger: the committed scripts are the ones that run, they run, they balance."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest

from ledgerd.loadgen.config import Workload
from ledgerd.loadgen.pgbench import (
    SETUP_SQL,
    ServerAddress,
    drop_database,
    naive_script,
    run_pgbench,
)
from tests.conftest import TEST_DATABASE_PREFIX, service_unavailable

SCRIPTS = Path(__file__).resolve().parents[3] / "bench" / "pgbench"
ACCOUNTS = 100


def test_the_committed_scripts_are_the_generated_ones() -> None:
    # `python bench/pgbench.py --write-scripts` rewrites them after a change to the generator.
    assert (SCRIPTS / "setup.sql").read_text() == SETUP_SQL
    for per_transaction in (1, 100):
        committed = (SCRIPTS / f"naive_{per_transaction}.sql").read_text()
        assert committed == naive_script(per_transaction)


def test_a_batch_locks_all_its_accounts_first_in_id_order() -> None:
    script = naive_script(3)
    lock = script.index("FOR UPDATE")
    assert script.count("FOR UPDATE") == 1
    assert lock < script.index("INSERT INTO naive_transfers")
    assert "(:dr1, :cr1, :dr2, :cr2, :dr3, :cr3)" in script
    assert script.count("INSERT INTO naive_transfers") == 3


@pytest.mark.parametrize(
    ("workload", "per_transaction"), [(Workload.HOT, 1), (Workload.UNIFORM, 100)]
)
async def test_the_naive_ledger_runs_and_balances(
    postgres_server_url: str, workload: Workload, per_transaction: int
) -> None:
    if shutil.which("pgbench") is None:
        service_unavailable("no pgbench on PATH (Debian: postgresql-client)")
    server = ServerAddress.from_url(postgres_server_url)
    database = f"{TEST_DATABASE_PREFIX}pgbench_{secrets.token_hex(4)}"
    try:
        result = await run_pgbench(
            postgres_server_url,
            workload=workload,
            accounts=ACCOUNTS,
            clients=2,
            per_transaction=per_transaction,
            duration_s=1,
            database=database,
            keep=True,
        )
        assert result.transfers_per_s > 0
        assert result.transfers_per_s == pytest.approx(result.tps * per_transaction)
        assert result.failed_transactions == 0
        assert result.balanced
        assert result.debits > 0
        assert result.server_settings["fsync"] in {"on", "off"}
        assert result.server_settings["server_version"]
        connection = await server.connect(database)
        try:
            transfers = await connection.fetchval("SELECT count(*) FROM naive_transfers")
            rows = await connection.fetch(
                "SELECT side, sum(amount)::bigint AS total FROM naive_entries GROUP BY side"
            )
            by_side = {str(row["side"]): int(row["total"]) for row in rows}
            hot_share = await connection.fetchval(
                "SELECT avg((debit_account = 1 OR credit_account = 1)::int)::float "
                "FROM naive_transfers"
            )
        finally:
            await connection.close()
    finally:
        await drop_database(server, database)
    assert transfers == result.transactions * per_transaction
    assert by_side == {"D": result.debits, "C": result.credits}
    assert hot_share == (1 if workload is Workload.HOT else pytest.approx(0.02, abs=0.02))
