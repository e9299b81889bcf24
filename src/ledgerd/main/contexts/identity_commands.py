"""The identity context's ``ledgerd`` commands: clients, users and signing keys.

``IDENTITY``'s description hands :func:`add_identity_commands` to the command line
(``BoundedContext.commands``); each command runs through the shared runner
(``ledgerd.main.command_runner``). A client's secret is printed once, by ``clients create``;
passwords are read from a prompt or standard input, never from an argument (which ``ps`` and
shell histories show); no command prints a private key.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from typing import Annotated

import typer
from dishka import AsyncContainer

from ledgerd.identity.adapters.signing_keys import reseal_key_set, rotate_key_set
from ledgerd.identity.application.manage_clients import (
    CreateClient,
    ListClients,
    NewClient,
    ResetClientSecret,
    RevokeClient,
)
from ledgerd.identity.application.manage_users import CreateUser, NewUser
from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.scopes import Scope
from ledgerd.identity.domain.signing_key_store import SigningKeyStore
from ledgerd.kernel.clock import Clock
from ledgerd.kernel.principal import ALL_LEDGERS, LedgerGrant
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.main.command_runner import EXIT_ERROR, EXIT_PROBLEMS, run
from ledgerd.main.command_style import PLAIN_HELP, Command
from ledgerd.main.settings import Settings
from ledgerd.main.text_tables import columns
from ledgerd.platform.auth.keys import SigningKeySet
from ledgerd.platform.auth.sealed_keys import KeySetSealing

clients = typer.Typer(name="clients", help="OAuth2 clients: who may get tokens.", **PLAIN_HELP)
users = typer.Typer(name="users", help="Users who sign in through a client.", **PLAIN_HELP)
keys = typer.Typer(name="keys", help="The access tokens' signing keys.", **PLAIN_HELP)

_SCOPE_NAMES = ", ".join(scope.value for scope in Scope)
ScopesOption = Annotated[
    str, typer.Option("--scopes", help=f"comma-separated scopes granted: {_SCOPE_NAMES}")
]
LedgersOption = Annotated[
    str | None, typer.Option("--ledgers", help="comma-separated ledger ids granted")
]
AllLedgersOption = Annotated[
    bool, typer.Option("--all-ledgers", help="grant every ledger, present and future")
]


def _usage_error(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_ERROR)


def _grant(scopes: str, ledgers: str | None, *, all_ledgers: bool) -> AccessGrant:
    """The grant the options describe; a usage error if they say too little or too much."""
    names = [name.strip() for name in scopes.split(",") if name.strip()]
    known = {scope.value for scope in Scope}
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        msg = f"unknown scope {unknown[0]!r}" if unknown else "--scopes names no scope"
        raise _usage_error(f"{msg}; the scopes are {_SCOPE_NAMES}")
    if all_ledgers == (ledgers is not None):
        raise _usage_error("give either --ledgers or --all-ledgers")
    granted: LedgerGrant = ALL_LEDGERS
    if ledgers is not None:
        granted = frozenset(ledger.strip() for ledger in ledgers.split(",") if ledger.strip())
        if not granted:
            raise _usage_error("--ledgers names no ledger")
    return AccessGrant(frozenset(Scope(name) for name in names), granted)


def _ledgers_text(grant: AccessGrant) -> str:
    return "*" if grant.ledgers is ALL_LEDGERS else ",".join(sorted(grant.ledgers))


def _instant(instant: datetime | None) -> str:
    return "-" if instant is None else instant.isoformat(timespec="seconds")


@clients.command("create", cls=Command)
def create_client(  # noqa: PLR0913, PLR0917 - typer: one parameter per command-line option
    name: Annotated[str, typer.Argument(metavar="NAME", help="a name for people to read")],
    scopes: ScopesOption,
    ledgers: LedgersOption = None,
    all_ledgers: AllLedgersOption = False,  # noqa: FBT002 - typer: a flag is a bool parameter
    public: Annotated[  # noqa: FBT002 - typer: a flag is a bool parameter
        bool,
        typer.Option(
            "--public", help="a browser or native app: no secret, code flow with PKCE, refresh"
        ),
    ] = False,
    redirect_uris: Annotated[
        list[str] | None,
        typer.Option("--redirect-uri", help="a redirect URI for the code flow (repeatable)"),
    ] = None,
) -> None:
    """Create a client and print its id and secret as JSON: the secret is shown this once."""
    request = NewClient(
        name=name,
        grant=_grant(scopes, ledgers, all_ledgers=all_ledgers),
        public=public,
        redirect_uris=tuple(redirect_uris or ()),
    )

    async def work(container: AsyncContainer, _settings: Settings) -> int:
        created = await (await container.get(CreateClient))(request)
        client = created.client
        typer.echo(
            json.dumps(
                {
                    "client_id": client.client_id,
                    "client_secret": created.secret,
                    "name": client.name,
                    "kind": client.kind.value,
                    "scopes": sorted(scope.value for scope in client.grant.scopes),
                    "ledgers": _ledgers_text(client.grant),
                    "redirect_uris": list(client.redirect_uris),
                },
                indent=2,
            )
        )
        return 0

    run(work)


@clients.command("list", cls=Command)
def list_clients() -> None:
    """List the clients (their secrets are stored hashed and never shown)."""

    async def work(container: AsyncContainer, _settings: Settings) -> int:
        listed = await (await container.get(ListClients))()
        rows = [
            (
                client.client_id,
                client.name,
                client.kind.value,
                ",".join(sorted(scope.value for scope in client.grant.scopes)),
                _ledgers_text(client.grant),
                _instant(client.created_at),
                _instant(client.revoked_at),
            )
            for client in listed
        ]
        headers = ("ID", "NAME", "KIND", "SCOPES", "LEDGERS", "CREATED", "REVOKED")
        typer.echo(columns(headers, rows))
        return 0

    run(work)


@clients.command("revoke", cls=Command)
def revoke_client(
    client_id: Annotated[str, typer.Argument(metavar="ID", help="the client's id")],
) -> None:
    """Revoke a client: it can no longer get, refresh or revoke tokens.

    Access tokens it holds stay valid until they expire (at most the access-token lifetime).
    """

    async def work(container: AsyncContainer, _settings: Settings) -> int:
        if await (await container.get(RevokeClient))(client_id):
            typer.echo(f"client {client_id} revoked")
            return 0
        typer.echo(f"no active client {client_id}", err=True)
        return EXIT_PROBLEMS

    run(work)


@clients.command("reset-secret", cls=Command)
def reset_client_secret(
    client_id: Annotated[str, typer.Argument(metavar="ID", help="the client's id")],
) -> None:
    """Give a confidential client a new secret, printed once as JSON; the old one stops working.

    Its id, scopes and ledgers stay. Access tokens got with the old secret stay valid until they
    expire (at most the access-token lifetime).
    """

    async def work(container: AsyncContainer, _settings: Settings) -> int:
        secret = await (await container.get(ResetClientSecret))(client_id)
        if secret is None:
            typer.echo(f"no active confidential client {client_id}", err=True)
            return EXIT_PROBLEMS
        typer.echo(json.dumps({"client_id": client_id, "client_secret": secret}, indent=2))
        return 0

    run(work)


def _read_password() -> str:
    """From a hidden prompt (typed twice) on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        password: str = typer.prompt("password", hide_input=True, confirmation_prompt=True)
        return password
    return sys.stdin.readline().removesuffix("\n").removesuffix("\r")


@users.command("create", cls=Command)
def create_user(
    username: Annotated[str, typer.Argument(metavar="USERNAME", help="the name to sign in with")],
    scopes: ScopesOption,
    ledgers: LedgersOption = None,
    all_ledgers: AllLedgersOption = False,  # noqa: FBT002 - typer: a flag is a bool parameter
) -> None:
    """Create a user; the password is asked for (or read from stdin), never an argument."""
    grant = _grant(scopes, ledgers, all_ledgers=all_ledgers)
    password = _read_password()

    async def work(container: AsyncContainer, _settings: Settings) -> int:
        user = await (await container.get(CreateUser))(NewUser(username, password, grant))
        typer.echo(json.dumps({"user_id": user.user_id, "username": user.username}))
        return 0

    run(work)


def _key_rows(key_set: SigningKeySet) -> list[tuple[str, ...]]:
    return [
        (
            key.kid,
            "current" if key.is_current else "retired",
            _instant(key.created_at),
            _instant(key.retired_at),
            _instant(key.verifiable_until),
        )
        for key in key_set.keys
    ]


_KEY_HEADERS = ("KID", "STATE", "CREATED", "RETIRED", "VERIFIABLE UNTIL")


@keys.command("list", cls=Command)
def list_keys() -> None:
    """List the signing keys: the current signer and the retired keys still verifiable."""

    async def work(container: AsyncContainer, _settings: Settings) -> int:
        uow, store = await container.get(UnitOfWork), await container.get(SigningKeyStore)
        sealing = await container.get(KeySetSealing)
        async with uow.begin(read_only=True):
            stored = await store.load()
        if stored is None:
            typer.echo("no signing keys yet: `ledgerd serve` makes the first on start")
            return 0
        typer.echo(columns(_KEY_HEADERS, _key_rows(sealing.open(stored.text))))
        return 0

    run(work)


@keys.command("rotate", cls=Command)
def rotate_keys() -> None:
    """Make a new signing key current; the previous one verifies until its tokens expire.

    Running servers pick the new key up within LEDGERD_KEY_RELOAD_INTERVAL_SECONDS.
    """

    async def work(container: AsyncContainer, settings: Settings) -> int:
        uow, store = await container.get(UnitOfWork), await container.get(SigningKeyStore)
        now = (await container.get(Clock)).now()
        lifetime = timedelta(seconds=settings.access_token_lifetime_seconds)
        sealing = await container.get(KeySetSealing)
        rotated = await rotate_key_set(uow, store, now, lifetime, sealing)
        typer.echo(f"key set version {rotated.version}; signing with {rotated.key_set.current.kid}")
        typer.echo(_stored_as(sealing))
        typer.echo(columns(_KEY_HEADERS, _key_rows(rotated.key_set)))
        return 0

    run(work)


@keys.command("encrypt", cls=Command)
def encrypt_keys() -> None:
    """Store the signing keys again, unchanged, sealed under LEDGERD_SIGNING_KEYS_SECRET.

    For a set stored unencrypted, or sealed under a key now in
    LEDGERD_SIGNING_KEYS_SECRET_PREVIOUS. No key changes: tokens stay valid.
    """

    async def work(container: AsyncContainer, _settings: Settings) -> int:
        sealing = await container.get(KeySetSealing)
        if sealing.current is None:
            typer.echo("error: LEDGERD_SIGNING_KEYS_SECRET is not set: nothing to encrypt with",
                       err=True)  # fmt: skip
            return EXIT_ERROR
        uow, store = await container.get(UnitOfWork), await container.get(SigningKeyStore)
        resealed = await reseal_key_set(uow, store, sealing)
        if resealed is None:
            typer.echo("no signing keys yet: `ledgerd serve` makes the first on start, encrypted")
            return 0
        version = resealed.stored.version
        if resealed.written:
            typer.echo(f"key set version {version}: {_stored_as(sealing)}")
        else:
            typer.echo(f"key set version {version}: already {_stored_as(sealing)}; not rewritten")
        return 0

    run(work)


def _stored_as(sealing: KeySetSealing) -> str:
    if sealing.current is None:
        return "stored unencrypted (LEDGERD_SIGNING_KEYS_SECRET is not set)"
    return f"encrypted under wrapping key {sealing.current.fingerprint}"


def add_identity_commands(cli: typer.Typer) -> None:
    """Add the identity context's command groups to ``cli``."""
    for group in (clients, users, keys):
        cli.add_typer(group)
