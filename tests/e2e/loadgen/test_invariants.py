"""The invariant checks fail when the ledger is wrong: a check that cannot fail is no check.

Each test makes a small, real ledger with the load generator, then breaks one thing behind
the API's back (or claims something the server never said) and expects the matching check
to fail, and ``ledgerd bench`` to exit 1.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from ledgerd.loadgen import invariants
from ledgerd.loadgen.bench import EXIT_INVARIANT_FAILED, BenchOptions, bench
from ledgerd.loadgen.config import GRPC, HTTP
from ledgerd.loadgen.report import BenchReport
from ledgerd.loadgen.runner import make_transport
from ledgerd.loadgen.transport import Transport
from ledgerd.loadgen.workload import account_id
from tests.e2e.loadgen.support import LEDGER, Served, quiet, text_of
from tests.e2e.rest.support import serve_rest

SINCE = datetime.now(UTC) - timedelta(days=1)
PHANTOM = "0" * 32


@asynccontextmanager
async def _admin(served: Served, transport: str) -> AsyncIterator[Transport]:
    admin = make_transport(served.config(transport), admin=True)
    try:
        yield admin
    finally:
        await admin.close()


async def _loaded(served: Served, transport: str = GRPC, **changes: object) -> BenchReport:
    status, report = await bench(
        served.config(transport, **changes), BenchOptions(), out=quiet(), err=quiet()
    )
    assert status == 0
    assert report is not None
    return report


async def _shift(served: Served, account: str, *, debits: int, credits_: int) -> None:
    """Change an account's stored totals without an entry: what a buggy writer would do."""
    async with served.api.engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE accounts SET posted_debits = posted_debits + :debits, "
                "posted_credits = posted_credits + :credits "
                "WHERE ledger_id = :ledger AND id = :account"
            ),
            {"debits": debits, "credits": credits_, "ledger": LEDGER, "account": account},
        )


@pytest.mark.parametrize("transport", [GRPC, HTTP])
async def test_an_acknowledged_id_the_server_never_saw_is_missing(
    served: Served, transport: str
) -> None:
    report = await _loaded(served, transport)
    async with _admin(served, transport) as admin:
        honest = await invariants.acknowledged_present(admin, LEDGER, report.stats.acked_ids, SINCE)
        assert honest.ok, honest
        claimed = [*report.stats.acked_ids, PHANTOM]
        check = await invariants.acknowledged_present(admin, LEDGER, claimed, SINCE)
    assert not check.ok
    assert "1 MISSING" in check.detail
    assert PHANTOM in check.detail


async def test_a_total_changed_behind_the_journal_unbalances_the_ledger(served: Served) -> None:
    await _loaded(served)
    await _shift(served, account_id(3), debits=1, credits_=0)
    async with _admin(served, GRPC) as admin:
        accounts = await invariants.all_accounts(admin, LEDGER)
    check = invariants.debits_equal_credits(accounts)
    assert not check.ok
    assert "!=" in check.detail


async def test_an_account_that_disagrees_with_its_entries_is_caught(served: Served) -> None:
    await _loaded(served)
    # Debits and credits both move: the ledger still balances, but this account's totals no
    # longer follow from its entries.
    victim = account_id(5)
    await _shift(served, victim, debits=7, credits_=7)
    async with _admin(served, HTTP) as admin:
        accounts = await invariants.all_accounts(admin, LEDGER)
        assert invariants.debits_equal_credits(accounts).ok
        (mine,) = [a for a in accounts if a.id == victim]
        check = await invariants.sampled_balances_match_entries(
            admin,
            LEDGER,
            [mine],
            random.Random(1),  # noqa: S311 - picks the sample
        )
    assert not check.ok
    assert victim in check.detail


async def test_bench_exits_1_and_ledgerd_verify_fails_on_a_broken_ledger(
    migrated_sqlite_url: str, tmp_path: Path
) -> None:
    # One backend is enough to see `ledgerd verify` fail (a process of its own, slow to start).
    async with serve_rest(migrated_sqlite_url) as api:
        served = Served(api, migrated_sqlite_url)
        await _loaded(served, transfers=40)
        await _shift(served, account_id(2), debits=3, credits_=3)
        output = tmp_path / "result.json"
        out = quiet()
        config = replace(served.config(GRPC, transfers=40), database_url=migrated_sqlite_url)
        status, report = await bench(config, BenchOptions(output=output), out=out, err=quiet())
    assert status == EXIT_INVARIANT_FAILED
    assert report is not None
    failed = {check.name for check in report.checks if not check.ok}
    assert invariants.LEDGERD_VERIFY in failed
    assert "FAILED" in text_of(out)
    assert '"ok": false' in output.read_text()
