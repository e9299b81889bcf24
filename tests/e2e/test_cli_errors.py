"""What a user sees when the configuration or the database is wrong: a line or two, no traceback.

Each case runs the real ``ledgerd`` with one mistake in its environment and checks that the
output names the variable the user set, says what is accepted, and ends with the documented
exit code (2: a configuration or usage mistake; 3: the database could not be reached).
"""

import os
import socket
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.e2e.test_cli import COMMAND_TIMEOUT_S, EXIT_ERROR, HEAD_REVISION, LEDGERD

EXIT_UNREACHABLE = 3
# Commands that read (or change rows) but never create a database or change its schema.
EXISTING_DATABASE_COMMANDS = (("verify", "demo"), ("replay", "demo"), ("outbox",), ("expire",))


def run(environment: dict[str, str], *args: str, cwd: Path | None = None) -> tuple[int, str]:
    """Exit code and everything printed (both streams) of ``ledgerd ARGS`` in ``environment``."""
    completed = subprocess.run(  # noqa: S603 - our own console script with fixed arguments
        [str(LEDGERD), *args],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
        cwd=cwd,
    )
    return completed.returncode, completed.stdout + completed.stderr


def assert_one_clear_error(output: str, variable: str) -> None:
    assert "Traceback" not in output
    assert variable in output
    assert len(output.strip().splitlines()) <= 2, output


@pytest.mark.parametrize(
    ("variable", "value", "accepted"),
    [
        ("LEDGERD_DATABASE_URL", "mysql://root@127.0.0.1/ledger", "sqlite+aiosqlite:///PATH"),
        ("LEDGERD_EVENTS_PUBLISHER", "natz", "'nats'"),
        ("LEDGERD_LOG_LEVEL", "verbose", "'DEBUG'"),
        ("LEDGERD_GRPC_ADDRESS", "50182", "HOST:PORT"),
        ("LEDGERD_HTTP_ADDRESS", "localhost", "HOST:PORT"),
        ("LEDGERD_TOKEN_ISSUER", "https://ledgerd.test/", "not an origin"),
        ("LEDGERD_ACCESS_TOKEN_LIFETIME_SECONDS", "7200", "less than or equal to 3600"),
        ("LEDGERD_KEY_RELOAD_INTERVAL_SECONDS", "0", "greater than 0"),
    ],
)
def test_a_refused_setting_is_one_line_naming_it(
    variable: str, value: str, accepted: str, sqlite_url: str
) -> None:
    code, output = run({"LEDGERD_DATABASE_URL": sqlite_url, variable: value}, "migrate")
    assert code == EXIT_ERROR, output
    assert_one_clear_error(output, variable)
    assert accepted in output


def test_a_refused_csrf_key_is_not_printed(sqlite_url: str) -> None:
    secret = "short-but-secret"
    code, output = run({"LEDGERD_DATABASE_URL": sqlite_url, "LEDGERD_CSRF_KEY": secret}, "migrate")
    assert code == EXIT_ERROR, output
    assert_one_clear_error(output, "LEDGERD_CSRF_KEY")
    assert "32 characters or more" in output
    assert secret not in output


def test_a_lower_case_log_level_is_accepted(sqlite_url: str) -> None:
    code, output = run(
        {"LEDGERD_DATABASE_URL": sqlite_url, "LEDGERD_LOG_LEVEL": "debug"}, "migrate"
    )
    assert code == 0, output
    assert f"database at revision {HEAD_REVISION}" in output


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_postgres_url_without_the_driver_is_accepted(scheme: str, postgres_url: str) -> None:
    plain = make_url(postgres_url).set(drivername=scheme).render_as_string(hide_password=False)
    code, output = run({"LEDGERD_DATABASE_URL": plain}, "migrate")
    assert code == 0, output
    assert f"database at revision {HEAD_REVISION}" in output


def _closed_port() -> int:
    """A port on loopback nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("command", ["migrate", "verify"])
def test_an_unreachable_database_is_one_line_with_its_own_exit_code(command: str) -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/test"
    code, output = run({"LEDGERD_DATABASE_URL": url}, command, "demo")
    assert code == EXIT_UNREACHABLE, output
    assert_one_clear_error(output, "LEDGERD_DATABASE_URL")
    assert "cannot connect to the database" in output


def test_a_missing_postgres_database_is_named(postgres_url: str) -> None:
    missing = make_url(postgres_url).set(database="ledgerd_no_such_database")
    url = missing.render_as_string(hide_password=False)
    code, output = run({"LEDGERD_DATABASE_URL": url}, "migrate")
    assert code == EXIT_ERROR, output
    assert_one_clear_error(output, "LEDGERD_DATABASE_URL")
    assert "ledgerd_no_such_database" in output


@pytest.mark.parametrize("command", EXISTING_DATABASE_COMMANDS)
def test_read_commands_do_not_create_an_embedded_database(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    environment = {key: value for key, value in os.environ.items() if key != "LEDGERD_DATABASE_URL"}
    code, output = run(
        {**environment, "LEDGERD_DATABASE_URL": "sqlite+aiosqlite:///ledgerd.db"},
        *command,
        cwd=tmp_path,
    )
    assert code == EXIT_ERROR, output
    assert_one_clear_error(output, "LEDGERD_DATABASE_URL")
    assert str(tmp_path / "ledgerd.db") in output  # which database was looked at
    assert not (tmp_path / "ledgerd.db").exists()


@pytest.mark.parametrize("command", EXISTING_DATABASE_COMMANDS)
def test_read_commands_on_an_unmigrated_database_say_migrate_first(
    command: tuple[str, ...], postgres_url: str
) -> None:
    code, output = run({"LEDGERD_DATABASE_URL": postgres_url}, *command)
    assert code == EXIT_ERROR, output
    assert "Traceback" not in output
    assert "run `ledgerd migrate` first" in output
    assert str(make_url(postgres_url).database) in output
