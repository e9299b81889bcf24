"""Operators' use cases on clients: create one (its secret shown once), list them, revoke one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ledgerd.identity.application.ports import RefreshTokenMaker, SecretHashing
from ledgerd.identity.domain.clients import ClientKind, OAuthClient
from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.repositories import ClientDirectory, ClientRepository
from ledgerd.kernel.clock import Clock
from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.ids import IdGenerator
from ledgerd.kernel.unit_of_work import UnitOfWork

MAX_NAME_LENGTH = 200


@dataclass(frozen=True, slots=True)
class NewClient:
    name: str
    grant: AccessGrant
    # Public: a browser or native app, no secret: authorization code with PKCE, then refresh.
    public: bool = False
    redirect_uris: tuple[str, ...] = ()
    # A chosen id (the demo client's); None: a new one.
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class CreatedClient:
    client: OAuthClient
    # A confidential client's secret, to show once; stored nowhere (only its hash is).
    secret: str | None = field(repr=False)


def _invalid(message: str) -> LedgerdError:
    return LedgerdError(ErrorCode.VALIDATION_FAILED, message)


def _checked_redirect_uri(uri: str) -> str:
    """An absolute URI without a fragment (RFC 6749 §3.1.2), compared exactly when used."""
    parts = urlsplit(uri)
    if not parts.scheme or not parts.netloc or parts.fragment or "#" in uri:
        msg = f"redirect URI {uri!r} is not an absolute URI without a fragment"
        raise _invalid(msg)
    return uri


class CreateClient:
    def __init__(  # noqa: PLR0913 - the ports a new client touches, each named
        self,
        *,
        uow: UnitOfWork,
        clients: ClientRepository,
        secrets: RefreshTokenMaker,
        hashing: SecretHashing,
        clock: Clock,
        new_id: IdGenerator,
    ) -> None:
        self._uow, self._clients, self._secrets, self._hashing = uow, clients, secrets, hashing
        self._clock, self._new_id = clock, new_id

    async def __call__(self, request: NewClient) -> CreatedClient:
        name = request.name.strip()
        if not name or len(name) > MAX_NAME_LENGTH:
            msg = f"a client's name is 1 to {MAX_NAME_LENGTH} characters"
            raise _invalid(msg)
        if not request.grant.scopes:
            raise _invalid("a client needs at least one scope")
        uris = tuple(_checked_redirect_uri(uri) for uri in request.redirect_uris)
        if request.public and not uris:
            raise _invalid("a public client needs a redirect URI (it may only use the code flow)")
        secret = None if request.public else self._secrets.new_token()
        # argon2 takes tens of milliseconds of CPU: off the event loop.
        secret_hash = None
        if secret is not None:
            secret_hash = await asyncio.to_thread(self._hashing.hash, secret)
        client = OAuthClient(
            client_id=request.client_id or self._new_id(),
            name=name,
            kind=ClientKind.PUBLIC if request.public else ClientKind.CONFIDENTIAL,
            secret_hash=secret_hash,
            grant=request.grant,
            created_at=self._clock.now(),
            redirect_uris=uris,
        )
        async with self._uow.begin() as tx:
            await self._clients.add(client)
            await tx.commit()
        return CreatedClient(client, secret)


class ListClients:
    def __init__(self, uow: UnitOfWork, directory: ClientDirectory) -> None:
        self._uow, self._directory = uow, directory

    async def __call__(self) -> list[OAuthClient]:
        async with self._uow.begin(read_only=True):
            return await self._directory.list_all()


class RevokeClient:
    """A revoked client authenticates no more: no new tokens, no refresh, no revocation calls.

    Access tokens it holds stay valid until they expire (they are checked by signature alone).
    """

    def __init__(self, uow: UnitOfWork, directory: ClientDirectory, clock: Clock) -> None:
        self._uow, self._directory, self._clock = uow, directory, clock

    async def __call__(self, client_id: str) -> bool:
        """Whether the client was revoked now (False: unknown, or revoked before)."""
        async with self._uow.begin() as tx:
            revoked = await self._directory.revoke(client_id, self._clock.now())
            await tx.commit()
        return revoked


class ResetClientSecret:
    """A new secret for a confidential client, shown once; the old one authenticates no more.

    For a leaked secret, or a routine rotation: the client's id, grant and ledgers stay, so its
    callers change one setting. Access tokens got with the old secret stay valid until they
    expire (revoking the client ends the client itself).
    """

    def __init__(
        self,
        uow: UnitOfWork,
        directory: ClientDirectory,
        secrets: RefreshTokenMaker,
        hashing: SecretHashing,
    ) -> None:
        self._uow, self._directory, self._secrets, self._hashing = uow, directory, secrets, hashing

    async def __call__(self, client_id: str) -> str | None:
        """The new secret; None when there is no active confidential client of that id."""
        secret = self._secrets.new_token()
        secret_hash = await asyncio.to_thread(self._hashing.hash, secret)
        async with self._uow.begin() as tx:
            replaced = await self._directory.replace_secret(client_id, secret_hash)
            await tx.commit()
        return secret if replaced else None
