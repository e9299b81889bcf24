"""The command line's own help: the version, -h, usage lines in README's words.

The version is asked of the installed console script; the help pages are read in process
(typer's runner on the real command line), which shows the same text without starting ~60
interpreters.
"""

from __future__ import annotations

import re
import subprocess
from importlib.metadata import version

import pytest
from typer.testing import CliRunner, Result

from ledgerd.main.cli import app
from tests.e2e.test_cli import COMMAND_TIMEOUT_S, LEDGERD

COMMANDS = (
    "migrate", "demo", "verify", "replay", "outbox", "republish", "serve", "worker", "expire",
    "bench", "ledgers list", "accounts list", "balance", "transfers get",
)  # fmt: skip


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own console script with fixed arguments
        [str(LEDGERD), *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def help_page(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), prog_name="ledgerd")


def test_version() -> None:
    completed = run("--version")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"ledgerd {version('ledgerd')}"


@pytest.mark.parametrize("command", COMMANDS)
def test_dash_h_is_help_without_type_noise(command: str) -> None:
    short, long = help_page(*command.split(), "-h"), help_page(*command.split(), "--help")
    assert short.exit_code == long.exit_code == 0, short.output
    assert short.stdout == long.stdout
    assert "-h, --help" in short.stdout
    # No value type after a flag, no braces around an argument's name.
    assert re.search(r"--[\w-]+ +<bool>", short.stdout) is None, short.stdout
    assert "{" not in short.stdout.splitlines()[0]


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        ("verify", "Usage: ledgerd verify [OPTIONS] LEDGER"),
        ("replay", "Usage: ledgerd replay [OPTIONS] LEDGER"),
        ("republish", "Usage: ledgerd republish [OPTIONS] LEDGER"),
        ("migrate", "Usage: ledgerd migrate [OPTIONS] [REVISION]"),
        ("ledgers list", "Usage: ledgerd ledgers list [OPTIONS]"),
        ("accounts list", "Usage: ledgerd accounts list [OPTIONS] LEDGER"),
        ("balance", "Usage: ledgerd balance [OPTIONS] LEDGER ACCOUNT"),
        ("transfers get", "Usage: ledgerd transfers get [OPTIONS] LEDGER ID"),
    ],
)
def test_usage_names_arguments_as_the_readme_does(command: str, usage: str) -> None:
    assert help_page(*command.split(), "-h").stdout.splitlines()[0].strip() == usage


@pytest.mark.parametrize("command", ["accounts list", "balance", "transfers get"])
def test_client_commands_say_how_amounts_are_shown(command: str) -> None:
    page = help_page(*command.split(), "-h").stdout
    assert "1234 of USD/2 prints as 12.34" in " ".join(page.split())


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_long_running_commands_say_ctrl_c_stops_them(command: str) -> None:
    assert "Ctrl-C" in " ".join(help_page(command, "-h").stdout.split())
