"""The ``ledgerd`` console script as a user runs it: a real process, configured by environment."""

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ledgerd.main.migrations import MIGRATIONS

LEDGERD = Path(sys.executable).parent / "ledgerd"
# `migrate` goes to the newest revision of each branch the package ships, whichever they are.
HEAD_REVISION = ", ".join(sorted(MIGRATIONS.heads()))
# An upper bound so a hung command fails the run instead of stalling it; not a measurement.
COMMAND_TIMEOUT_S = 120
DEMO_LEDGER = "demo-test"
VERIFIED_OK = "hash chain intact, balances match the journal, debits = credits: OK"
DEMO_ACCOUNTS = (
    "bank:usd",
    "merchant:shop",
    "revenue:fees",
    "wallet:alice",
    "wallet:bob",
    "wallet:carol",
    "wallet:dave",
    "wallet:erin-eur",
)
EXIT_PROBLEMS = 1
EXIT_ERROR = 2


def ledgerd(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "LEDGERD_DATABASE_URL": database_url}
    return subprocess.run(  # noqa: S603 - our own console script with fixed arguments
        [str(LEDGERD), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def _sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _assert_demo_output(completed: subprocess.CompletedProcess[str]) -> None:
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert f"ledger {DEMO_LEDGER}: opened {len(DEMO_ACCOUNTS)} accounts" in out
    assert VERIFIED_OK in out
    table = out.split("final balances:\n", 1)[1].splitlines()
    assert table[0].split() == [
        "account", "asset", "posted", "dr", "posted", "cr", "pending", "dr", "pending", "cr",
        "available",
    ]  # fmt: skip
    rows = [line.split() for line in table[1 : 1 + len(DEMO_ACCOUNTS)]]
    assert [row[0] for row in rows] == list(DEMO_ACCOUNTS)
    for row in rows:
        # asset, four balances and what is available, all decimal amounts in the asset's scale
        assert row[1] in {"USD/2", "EUR/2"}
        assert all(cell.lstrip("-").replace(".", "", 1).isdigit() for cell in row[2:7]), row
    # Every hold is settled by the end of the demo: nothing is left pending.
    assert all(row[4] == row[5] == "0.00" for row in rows)


@pytest.fixture(scope="module")
def demo_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with the demo ledger in it, made once by the real commands."""
    path = tmp_path_factory.mktemp("cli") / "demo.db"
    url = _sqlite_url(path)
    migrated = ledgerd(url, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert f"database at revision {HEAD_REVISION}" in migrated.stdout
    _assert_demo_output(ledgerd(url, "demo", "--ledger", DEMO_LEDGER))
    return path


def _copy(database: Path, directory: Path) -> Path:
    """A private copy of the database (and its WAL files, if any) for a test to change."""
    copy = directory / database.name
    for suffix in ("", "-wal", "-shm"):
        source = database.with_name(database.name + suffix)
        if source.exists():
            shutil.copyfile(source, copy.with_name(copy.name + suffix))
    return copy


def test_migrate_then_demo_prints_the_verification_and_balances(demo_database: Path) -> None:
    # The fixture ran `migrate` and `demo` and checked their output; the data is there too.
    with sqlite3.connect(demo_database) as connection:
        (ledgers,) = connection.execute(
            "SELECT count(*) FROM ledgers WHERE id = ?", (DEMO_LEDGER,)
        ).fetchone()
        (transfers,) = connection.execute("SELECT count(*) FROM transfers").fetchone()
    connection.close()
    assert ledgers == 1
    assert transfers > 200


def test_verify_an_intact_ledger(demo_database: Path) -> None:
    completed = ledgerd(_sqlite_url(demo_database), "verify", DEMO_LEDGER)
    assert completed.returncode == 0, completed.stderr
    assert VERIFIED_OK in completed.stdout
    assert "PROBLEM" not in completed.stdout


def test_verify_an_unknown_ledger(demo_database: Path) -> None:
    completed = ledgerd(_sqlite_url(demo_database), "verify", "no-such-ledger")
    assert completed.returncode == EXIT_ERROR
    assert "LEDGER_NOT_FOUND" in completed.stderr
    assert f"(database: {demo_database})" in completed.stderr  # which one was looked in
    assert VERIFIED_OK not in completed.stdout


def test_verify_a_tampered_ledger(demo_database: Path, tmp_path: Path) -> None:
    database = _copy(demo_database, tmp_path)
    with sqlite3.connect(database) as connection:
        (victim,) = connection.execute(
            "SELECT id FROM transfers WHERE ledger_id = ? AND kind = 'posting' "
            "ORDER BY sequence LIMIT 1 OFFSET 10",
            (DEMO_LEDGER,),
        ).fetchone()
        forged = connection.execute(
            # One more minor unit on the first leg of a payment.
            "UPDATE transfers "
            "SET legs = json_replace(legs, '$[0][2]', json_extract(legs, '$[0][2]') + 1) "
            "WHERE ledger_id = ? AND id = ?",
            (DEMO_LEDGER, victim),
        )
        assert forged.rowcount == 1
    connection.close()

    completed = ledgerd(_sqlite_url(database), "verify", DEMO_LEDGER)
    assert completed.returncode == EXIT_PROBLEMS, completed.stderr
    assert "PROBLEM: transfer #" in completed.stdout
    assert f"({victim}): hash does not match its content" in completed.stdout
    assert VERIFIED_OK not in completed.stdout


def _table_names(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    connection.close()
    return names


def test_a_downgrade_over_a_journal_is_refused_without_force(
    demo_database: Path, tmp_path: Path
) -> None:
    database = _copy(demo_database, tmp_path)
    url = _sqlite_url(database)
    for extra in ((), ("--yes",)):
        refused = ledgerd(url, "migrate", "base", "--downgrade", *extra)
        assert refused.returncode == EXIT_ERROR, refused.stderr
        assert "Traceback" not in refused.stderr
        assert "drops its tables and their rows: 1 ledgers, 8 accounts, " in refused.stderr
        assert "refused: the journal holds " in refused.stderr
        assert "--force" in refused.stderr
        assert "transfers" in _table_names(database)


def test_a_downgrade_needs_yes_when_not_on_a_terminal(tmp_path: Path) -> None:
    database = tmp_path / "empty.db"
    url = _sqlite_url(database)
    assert ledgerd(url, "migrate").returncode == 0
    refused = ledgerd(url, "migrate", "base", "--downgrade")  # stdin is not a terminal here
    assert refused.returncode == EXIT_ERROR, refused.stderr
    assert "0 ledgers, 0 accounts, 0 transfers" in refused.stderr
    assert "refused: add --yes to go ahead" in refused.stderr
    assert "ledgers" in _table_names(database)
    agreed = ledgerd(url, "migrate", "base", "--downgrade", "--yes")
    assert agreed.returncode == 0, agreed.stderr
    assert "ledgers" not in _table_names(database)


def test_migrate_down_to_base_and_up_again(demo_database: Path, tmp_path: Path) -> None:
    database = _copy(demo_database, tmp_path)
    url = _sqlite_url(database)
    down = ledgerd(url, "migrate", "base", "--downgrade", "--yes", "--force")
    assert down.returncode == 0, down.stderr
    assert "database at revision None" in down.stdout
    with sqlite3.connect(database) as connection:
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    connection.close()
    assert names & {"ledgers", "accounts", "transfers", "entries"} == set()

    up = ledgerd(url, "migrate")
    assert up.returncode == 0, up.stderr
    assert f"database at revision {HEAD_REVISION}" in up.stdout
    # The schema is back, and empty: the demo ledger went with the downgrade.
    gone = ledgerd(url, "verify", DEMO_LEDGER)
    assert gone.returncode == EXIT_ERROR
    assert "LEDGER_NOT_FOUND" in gone.stderr


def test_postgres_demo_needs_migrate_first(postgres_url: str) -> None:
    refused = ledgerd(postgres_url, "demo", "--ledger", DEMO_LEDGER)
    assert refused.returncode == EXIT_ERROR
    assert "run `ledgerd migrate` first" in refused.stderr
    assert "revision none" in refused.stderr
    assert "Traceback" not in refused.stderr

    migrated = ledgerd(postgres_url, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert f"database at revision {HEAD_REVISION}" in migrated.stdout
    _assert_demo_output(ledgerd(postgres_url, "demo", "--ledger", DEMO_LEDGER))
    verified = ledgerd(postgres_url, "verify", DEMO_LEDGER)
    assert verified.returncode == 0, verified.stderr
    assert VERIFIED_OK in verified.stdout


def test_republish_moves_a_ledgers_events_back_into_the_outbox(
    demo_database: Path, tmp_path: Path
) -> None:
    url = _sqlite_url(_copy(demo_database, tmp_path))
    waiting = ledgerd(url, "republish", DEMO_LEDGER, "--from", "5")
    assert waiting.returncode == 0, waiting.stderr
    assert "not published yet; nothing to do" in waiting.stdout  # no relay ran: all waiting

    with sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///")) as connection:
        (last,) = connection.execute(
            "SELECT last_sequence FROM outbox_streams WHERE stream = ?", (DEMO_LEDGER,)
        ).fetchone()
        connection.execute(  # as a relay leaves it once everything is published
            "UPDATE outbox_cursors SET published_sequence = ? WHERE stream = ?",
            (last, DEMO_LEDGER),
        )
    connection.close()
    again = ledgerd(url, "republish", DEMO_LEDGER, "--from", "5")
    assert again.returncode == 0, again.stderr
    assert f"{DEMO_LEDGER}: {last - 4} events from #5 will be published again" in again.stdout
    report = ledgerd(url, "outbox")
    assert f"{DEMO_LEDGER}: {last - 4} unpublished of {last}" in report.stdout

    unknown = ledgerd(url, "republish", "no-such-ledger")
    assert unknown.returncode == EXIT_ERROR
    assert "error LEDGER_NOT_FOUND" in unknown.stderr  # as `verify` answers
    assert "Traceback" not in unknown.stderr
    refused = ledgerd(url, "republish", DEMO_LEDGER, "--from", "0")
    assert refused.returncode == EXIT_ERROR  # typer's usage error: sequences start at 1
