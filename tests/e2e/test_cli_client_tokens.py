"""The client commands against a server that requires access tokens (``LEDGERD_AUTH=required``).

The server is the real gRPC server in-process (``tests/e2e/grpc/conftest.py``) with
authentication required, on SQLite; clients are made and tokens issued by the identity
context's own use cases, from the server's container. The commands run as processes, as a
user runs them, over a real socket: with ``--token``, with ``LEDGERD_TOKEN``, without a token,
with a token short of the scope, with a refused token. A token never shows in their output.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from ledgerd.identity.application.authenticate_client import ClientCredentials
from ledgerd.identity.application.client_credentials import ClientCredentialsRequest
from ledgerd.identity.application.manage_clients import CreateClient, NewClient
from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.scopes import Scope
from ledgerd.identity.entrypoints.oauth_app import OAuthUseCases
from ledgerd.kernel.principal import ALL_LEDGERS
from ledgerd.main.cli import app
from ledgerd.v1 import ledger_pb2 as pb
from tests.e2e.grpc.conftest import GrpcApi, running_api
from tests.e2e.grpc.test_serve import LEDGERD
from tests.e2e.test_cli import COMMAND_TIMEOUT_S, EXIT_ERROR

CALL_TIMEOUT_S = 30.0
NEEDS_A_TOKEN = (
    "needs an access token (--token or LEDGERD_TOKEN): `ledgerd serve --demo` prints one as "
    "`export LEDGERD_TOKEN=…`; or POST /oauth2/token with a client's credentials "
    "(`ledgerd clients create`, docs/security.md)"
)


@dataclass(frozen=True, slots=True)
class Run:
    code: int
    out: str
    err: str


@dataclass(frozen=True, slots=True)
class Guarded:
    """The served books ``shop``, and tokens: every scope, and every scope but ledger.read."""

    server: str
    api: GrpcApi
    reader: str
    writer_only: str

    async def ledgerd(self, *args: str, token: str | None = None) -> Run:
        """``ledgerd ARGS`` on this server; ``token`` (if any) in ``LEDGERD_TOKEN``."""
        env = {k: v for k, v in os.environ.items() if k != "LEDGERD_TOKEN"}
        env["LEDGERD_SERVER"] = self.server
        if token is not None:
            env["LEDGERD_TOKEN"] = token
        process = await asyncio.create_subprocess_exec(
            str(LEDGERD),
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(COMMAND_TIMEOUT_S):
            out, err = await process.communicate()
        assert process.returncode is not None
        return Run(process.returncode, out.decode(), err.decode())


async def _token(api: GrpcApi, name: str, scopes: frozenset[Scope]) -> str:
    """An access token of a new client granted every ledger and ``scopes``."""
    create = await api.app.container.get(CreateClient)
    created = await create(NewClient(name, AccessGrant(scopes, ALL_LEDGERS)))
    assert created.secret is not None
    oauth = await api.app.container.get(OAuthUseCases)
    credentials = ClientCredentials(created.client.client_id, created.secret)
    issued = await oauth.client_credentials(ClientCredentialsRequest(credentials))
    return issued.access_token


@pytest.fixture
async def guarded(migrated_sqlite_url: str) -> AsyncIterator[Guarded]:
    async with running_api(migrated_sqlite_url, {"auth": "required"}) as api:
        reader = await _token(api, "reader", frozenset(Scope))
        writer_only = await _token(api, "writer", frozenset(Scope) - {Scope.LEDGER_READ})
        metadata = (("authorization", f"Bearer {reader}"),)
        await api.stub.CreateLedger(
            pb.CreateLedgerRequest(id="shop"), metadata=metadata, timeout=CALL_TIMEOUT_S
        )
        for account in ("alice", "bank"):
            await api.stub.CreateAccount(
                pb.CreateAccountRequest(ledger="shop", id=account, asset="USD/2"),
                metadata=metadata,
                timeout=CALL_TIMEOUT_S,
            )
        top_up = pb.TransferInput(
            idempotency_key="top-up",
            legs=[pb.Leg(debit_account="bank", credit_account="alice", amount=2500)],
        )
        await api.stub.PostTransfer(
            pb.PostTransferRequest(ledger="shop", transfer=top_up),
            metadata=metadata,
            timeout=CALL_TIMEOUT_S,
        )
        yield Guarded(f"127.0.0.1:{api.port}", api, reader, writer_only)


def _shows_no(token: str, run: Run) -> None:
    assert token not in run.out
    assert token not in run.err
    # Nor its payload or signature alone.
    for part in token.split(".")[1:]:
        assert part not in run.out + run.err


async def test_a_token_given_with_the_option_or_the_variable_is_sent(guarded: Guarded) -> None:
    with_option = await guarded.ledgerd("balance", "shop", "alice", "--token", guarded.reader)
    assert (with_option.code, with_option.err) == (0, ""), with_option
    assert ["available:", "25.00"] in [line.split() for line in with_option.out.splitlines()]
    _shows_no(guarded.reader, with_option)

    with_variable, listed = await asyncio.gather(
        guarded.ledgerd("accounts", "list", "shop", token=guarded.reader),
        guarded.ledgerd("ledgers", "list", "-o", "json", token=guarded.reader),
    )
    assert (with_variable.code, with_variable.err) == (0, ""), with_variable
    assert [line.split()[0] for line in with_variable.out.splitlines()[1:]] == ["alice", "bank"]
    assert (listed.code, listed.err) == (0, ""), listed
    assert '"id": "shop"' in listed.out


async def test_without_a_token_the_line_says_how_to_get_one(guarded: Guarded) -> None:
    run = await guarded.ledgerd("balance", "shop", "alice")
    assert run.code == EXIT_ERROR
    assert run.out == ""
    assert run.err == (
        f"error UNAUTHENTICATED: missing access token: ledgerd at {guarded.server} "
        f"{NEEDS_A_TOKEN}\n"
    )
    _shows_no(guarded.reader, run)


async def test_a_token_short_of_the_scope_names_the_scope(guarded: Guarded) -> None:
    run = await guarded.ledgerd("accounts", "list", "shop", "--token", guarded.writer_only)
    assert run.code == EXIT_ERROR
    assert run.out == ""
    assert run.err == (
        "error INSUFFICIENT_SCOPE: the access token lacks the scope ledger.read "
        "(--token or LEDGERD_TOKEN): this call needs a token granted ledger.read "
        "(POST /oauth2/token for a client granted it, `ledgerd clients create --scopes …`)\n"
    )
    _shows_no(guarded.writer_only, run)


async def test_a_refused_token_is_never_echoed(guarded: Guarded) -> None:
    header, payload, signature = guarded.reader.split(".")
    # Another signature: well formed, but not the server's.
    forged = f"{header}.{payload}.{signature[::-1]}"
    run = await guarded.ledgerd("ledgers", "list", token=forged)
    assert run.code == EXIT_ERROR
    assert run.out == ""
    assert run.err.startswith("error UNAUTHENTICATED: access token refused: ")
    assert run.err.endswith(
        " (the token of --token or LEDGERD_TOKEN): get a new one: `ledgerd serve --demo` "
        "prints one as `export LEDGERD_TOKEN=…`; or POST /oauth2/token with a client's "
        "credentials (`ledgerd clients create`, docs/security.md)\n"
    )
    assert run.err.count("\n") == 1
    assert forged not in run.err
    assert signature[::-1] not in run.err

    # Not even a token (a pasted header value, a stray newline): refused before any call.
    bogus = (f"Bearer {guarded.reader}", f"{guarded.reader}\nx")
    runs = await asyncio.gather(
        *(guarded.ledgerd("ledgers", "list", "--token", value) for value in bogus)
    )
    for refused in runs:
        assert refused.code == EXIT_ERROR
        assert refused.err == (
            "error: --token or LEDGERD_TOKEN: not an access token (the token alone, without "
            "`Bearer `, as /oauth2/token's access_token gives it)\n"
        )
        _shows_no(guarded.reader, refused)


@pytest.mark.parametrize(
    "command", [("ledgers", "list"), ("accounts", "list"), ("balance",), ("transfers", "get")]
)
def test_help_names_the_variable_never_its_value(command: tuple[str, ...]) -> None:
    token = "a-token-in-the-environment"
    shown = CliRunner().invoke(app, [*command, "--help"], env={"LEDGERD_TOKEN": token})
    assert shown.exit_code == 0, shown.output
    assert "[env var: LEDGERD_TOKEN]" in " ".join(shown.output.split())
    assert token not in shown.output
