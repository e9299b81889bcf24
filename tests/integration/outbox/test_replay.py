"""``ledgerd replay``: balances rebuilt from the events alone match; any tampering is named."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sqlalchemy import delete, update

from ledgerd.ledger.adapters import tables
from ledgerd.ledger.application.replay_ledger import (
    ReplayLedger,
    ReplayLedgerHandler,
    ReplayReport,
)
from ledgerd.ledger.entrypoints.cli.report import replay_summary
from ledgerd.platform.outbox import tables as outbox
from tests.integration.conftest import LedgerApp, open_ledger_app
from tests.integration.outbox.helpers import EVERY_CHANGE, make_every_change

LEDGERD = Path(sys.executable).parent / "ledgerd"
CLI_TIMEOUT_S = 60
TRANSFERS = sum(1 for kind in EVERY_CHANGE if "Transfer" in kind or "Pending" in kind)


async def _replay(app: LedgerApp, ledger: str = "books") -> ReplayReport:
    replay = await app.container.get(ReplayLedgerHandler)
    return await replay(ReplayLedger(ledger))


async def test_a_ledger_rebuilt_from_its_events_matches(ledger_app: LedgerApp) -> None:
    await make_every_change(ledger_app, "books")
    report = await _replay(ledger_app)
    assert report.ok, replay_summary(report)
    assert (report.events, report.transfers, report.accounts) == (
        len(EVERY_CHANGE),
        TRANSFERS,
        2,
    )


async def test_a_stored_balance_changed_behind_the_ledgers_back_is_named(
    ledger_app: LedgerApp,
) -> None:
    await make_every_change(ledger_app, "books")
    async with ledger_app.engine.begin() as connection:
        await connection.execute(
            update(tables.accounts)
            .where(tables.accounts.c.id == "alice")
            .values(posted_credits=tables.accounts.c.posted_credits + 1)
        )
    report = await _replay(ledger_app)
    assert not report.ok
    rebuilt = [p for p in report.problems if "rebuilt from the events" in p]
    assert len(rebuilt) == 1
    assert rebuilt[0].startswith("account alice: stored")
    assert any(p.startswith("journal: ") for p in report.problems)


async def test_a_lost_event_is_a_gap_and_a_missing_transfer(ledger_app: LedgerApp) -> None:
    await make_every_change(ledger_app, "books")
    async with ledger_app.engine.begin() as connection:
        await connection.execute(
            delete(outbox.outbox_events).where(outbox.outbox_events.c.sequence == 6)
        )
    report = await _replay(ledger_app)
    assert report.events == len(EVERY_CHANGE) - 1
    assert report.problems[0] == "event stream has a gap: sequence 7 after 5"
    # Event 6 was the capture (the chain's third transfer): the next jumps over it.
    assert report.problems[1].startswith("event 7: transfer ")
    assert report.problems[1].endswith(" is chain position 4, expected 3")
    # Without the capture's entries the rebuilt balances drift from what the entries carry,
    # and end away from the stored balances of both accounts; the journal itself is intact.
    assert any(p.startswith("event 7: bank is ") for p in report.problems)
    differing = {p.split(":")[0] for p in report.problems if "rebuilt from the events" in p}
    assert differing == {"account bank", "account alice"}
    assert not any(p.startswith("journal: ") for p in report.problems)


async def test_the_replay_and_outbox_commands(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/books.db"
    async with open_ledger_app(url) as app:
        await make_every_change(app, "books")
    env = {"LEDGERD_DATABASE_URL": url, "PATH": str(LEDGERD.parent)}

    code, out = await _ledgerd(env, "replay", "books")
    assert code == 0, out
    assert f"{len(EVERY_CHANGE)} events, {TRANSFERS} transfers, 2 accounts" in out
    assert "stored balances = the journal: OK" in out

    code, out = await _ledgerd(env, "outbox")
    assert code == 0, out
    # Nothing relayed them (no server ran): all are waiting.
    assert f"books: {len(EVERY_CHANGE)} unpublished of {len(EVERY_CHANGE)}" in out
    assert f"1 ledgers, {len(EVERY_CHANGE)} events unpublished, 0 dead letters" in out


async def _ledgerd(env: dict[str, str], *arguments: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        LEDGERD,
        *arguments,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(CLI_TIMEOUT_S):
        output, _ = await process.communicate()
    return await process.wait(), output.decode()
