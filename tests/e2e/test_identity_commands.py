"""The identity context's commands: clients, users and keys, as ``ledgerd`` runs them.

In process (typer's runner on the real command line, configured by environment); what they did
is checked through the served composition's own use cases.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import closing
from typing import Any, TypeVar

import pytest
from dishka import AsyncContainer
from typer.testing import CliRunner, Result

from ledgerd.identity.application.authenticate_client import AuthenticateClient, ClientCredentials
from ledgerd.identity.application.authenticate_user import AuthenticateUser, UserCredentials
from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.principal import ALL_LEDGERS, LedgerGrant
from ledgerd.main.cli import app
from ledgerd.main.container import build_container
from ledgerd.main.settings import Settings

EXIT_PROBLEMS = 1
EXIT_ERROR = 2
PASSWORD = "correct horse battery staple"
T = TypeVar("T")


@pytest.fixture
def invoke(sqlite_url: str) -> Callable[..., Result]:
    """``ledgerd ARGS`` on a migrated database of the test's own."""
    runner = CliRunner()
    environment = {"LEDGERD_DATABASE_URL": sqlite_url}

    def run(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=stdin, env=environment)

    migrated = run("migrate")
    assert migrated.exit_code == 0, migrated.output
    return run


def _with_container(url: str, work: Callable[[AsyncContainer], Awaitable[T]]) -> T:
    async def main() -> T:
        container = build_container(Settings(database_url=url))
        try:
            return await work(container)
        finally:
            await container.close()

    return asyncio.run(main())


def _created(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    created: dict[str, Any] = json.loads(result.stdout)
    return created


def test_a_client_is_created_listed_without_its_secret_and_revoked(
    invoke: Callable[..., Result], sqlite_url: str
) -> None:
    created = _created(
        invoke("clients", "create", "payouts", "--scopes", "ledger.read,transfers.write",
               "--ledgers", "main,eu")
    )  # fmt: skip
    assert created["kind"] == "confidential"
    assert (created["scopes"], created["ledgers"]) == (
        ["ledger.read", "transfers.write"],
        "eu,main",
    )
    client_id, secret = created["client_id"], created["client_secret"]
    assert len(secret) >= 43  # 256 random bits

    async def authenticate(container: AsyncContainer) -> str:
        check = await container.get(AuthenticateClient)
        return (await check(ClientCredentials(client_id, secret))).client_id

    assert _with_container(sqlite_url, authenticate) == client_id

    listed = invoke("clients", "list")
    assert listed.exit_code == 0, listed.output
    assert client_id in listed.stdout
    assert "payouts" in listed.stdout
    assert secret not in listed.stdout

    revoked = invoke("clients", "revoke", client_id)
    assert revoked.exit_code == 0, revoked.output
    assert invoke("clients", "revoke", client_id).exit_code == EXIT_PROBLEMS
    with pytest.raises(LedgerdError) as refused:
        _with_container(sqlite_url, authenticate)
    assert refused.value.code is IdentityErrorCode.INVALID_CLIENT


def test_a_reset_secret_replaces_the_old_one_and_keeps_the_grant(
    invoke: Callable[..., Result], sqlite_url: str
) -> None:
    created = _created(
        invoke("clients", "create", "payouts", "--scopes", "ledger.read", "--ledgers", "main")
    )
    client_id, old_secret = created["client_id"], created["client_secret"]

    reset = _created(invoke("clients", "reset-secret", client_id))
    assert reset["client_id"] == client_id
    new_secret = reset["client_secret"]
    assert new_secret != old_secret

    def authenticate(secret: str) -> Callable[[AsyncContainer], Awaitable[LedgerGrant]]:
        async def check(container: AsyncContainer) -> LedgerGrant:
            authenticate = await container.get(AuthenticateClient)
            return (await authenticate(ClientCredentials(client_id, secret))).grant.ledgers

        return check

    assert _with_container(sqlite_url, authenticate(new_secret)) == frozenset({"main"})
    with pytest.raises(LedgerdError) as refused:
        _with_container(sqlite_url, authenticate(old_secret))
    assert refused.value.code is IdentityErrorCode.INVALID_CLIENT

    assert invoke("clients", "revoke", client_id).exit_code == 0
    after_revoke = invoke("clients", "reset-secret", client_id)
    assert after_revoke.exit_code == EXIT_PROBLEMS
    assert "no active confidential client" in after_revoke.output
    assert invoke("clients", "reset-secret", "nobody").exit_code == EXIT_PROBLEMS


def test_a_public_client_has_no_secret_and_needs_a_redirect_uri(
    invoke: Callable[..., Result],
) -> None:
    created = _created(
        invoke("clients", "create", "console", "--scopes", "ledger.read", "--all-ledgers",
               "--public", "--redirect-uri", "https://console.test/cb")
    )  # fmt: skip
    assert (created["kind"], created["client_secret"]) == ("public", None)
    assert created["redirect_uris"] == ["https://console.test/cb"]

    refused = invoke("clients", "create", "x", "--scopes", "ledger.read", "--all-ledgers",
                     "--public")  # fmt: skip
    assert refused.exit_code == EXIT_ERROR
    assert "needs a redirect URI" in refused.output


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        (["--scopes", "ledger.read"], "give either --ledgers or --all-ledgers"),
        (["--scopes", "ledger.read", "--ledgers", "a", "--all-ledgers"], "give either"),
        (["--scopes", "ledger.rule", "--all-ledgers"], "unknown scope 'ledger.rule'"),
    ],
)
def test_a_grant_said_wrong_is_a_usage_error(
    invoke: Callable[..., Result], options: list[str], complaint: str
) -> None:
    refused = invoke("clients", "create", "x", *options)
    assert refused.exit_code == EXIT_ERROR
    assert complaint in refused.output


def test_a_user_is_created_with_a_password_from_stdin(
    invoke: Callable[..., Result], sqlite_url: str
) -> None:
    created = _created(
        invoke("users", "create", "alice", "--scopes", "ledger.read", "--all-ledgers",
               stdin=PASSWORD + "\n")
    )  # fmt: skip
    assert created["username"] == "alice"
    assert PASSWORD not in json.dumps(created)

    async def sign_in(container: AsyncContainer) -> LedgerGrant:
        authenticate = await container.get(AuthenticateUser)
        return (await authenticate(UserCredentials("alice", PASSWORD))).grant.ledgers

    assert _with_container(sqlite_url, sign_in) is ALL_LEDGERS
    again = invoke("users", "create", "alice", "--scopes", "ledger.read", "--all-ledgers",
                   stdin=PASSWORD + "\n")  # fmt: skip
    assert again.exit_code == EXIT_ERROR
    assert "exists already" in again.output
    short = invoke("users", "create", "bob", "--scopes", "ledger.read", "--all-ledgers",
                   stdin="short\n")  # fmt: skip
    assert short.exit_code == EXIT_ERROR
    assert "at least 8 characters" in short.output


def test_keys_are_rotated_and_listed_without_their_private_parts(
    invoke: Callable[..., Result], sqlite_url: str
) -> None:
    empty = invoke("keys", "list")
    assert empty.exit_code == 0, empty.output
    assert "no signing keys yet" in empty.stdout

    rotations = [invoke("keys", "rotate") for _rotation in range(2)]
    for rotated in rotations:
        assert rotated.exit_code == 0, rotated.output
    listed = invoke("keys", "list")
    assert listed.exit_code == 0, listed.output
    rows = listed.stdout.splitlines()
    assert rows[0].split() == ["KID", "STATE", "CREATED", "RETIRED", "VERIFIABLE", "UNTIL"]
    assert [row.split()[1] for row in rows[1:]] == ["current", "retired"]
    # The current key has no end; the retired one verifies until its tokens have expired.
    assert rows[1].split()[3:] == ["-", "-"]
    assert rows[2].split()[3] != "-"
    private_parts = _private_key_values(sqlite_url)
    assert len(private_parts) == 2
    for private in private_parts:
        assert private not in listed.stdout
        assert all(private not in rotated.stdout for rotated in rotations)


def _private_key_values(sqlite_url: str) -> list[str]:
    """The stored keys' private members (``d``), read from the table behind the commands."""
    path = sqlite_url.removeprefix("sqlite+aiosqlite:///")
    with closing(sqlite3.connect(path)) as connection:
        (stored,) = connection.execute("SELECT key_set FROM identity_signing_keys").fetchone()
    return re.findall(r'"d":\s*"([^"]+)"', stored)
