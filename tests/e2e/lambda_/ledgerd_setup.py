"""A database made ready by the real commands, as an operator prepares one for the function."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.grpc.test_serve import LEDGERD, ledgerd_environment

COMMAND_TIMEOUT_S = 60.0
SCOPES = "ledger.read,ledger.write,transfers.write,ledgers.admin"


@dataclass(frozen=True)
class Prepared:
    database_url: str
    client_id: str
    client_secret: str


def ledgerd(database_url: str, *argv: str) -> str:
    """``ledgerd ARGV`` on ``database_url`` to its end; its standard output."""
    done = subprocess.run(  # noqa: S603 - our own program, fixed arguments
        [str(LEDGERD), *argv],
        env=ledgerd_environment(database_url, auth="required"),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def prepare(directory: Path) -> Prepared:
    """A migrated SQLite database holding a client granted every scope on every ledger."""
    url = f"sqlite+aiosqlite:///{directory / 'ledger.db'}"
    ledgerd(url, "migrate")
    client = json.loads(
        ledgerd(url, "clients", "create", "lambda-tests", "--scopes", SCOPES, "--all-ledgers")
    )
    return Prepared(url, client["client_id"], client["client_secret"])
