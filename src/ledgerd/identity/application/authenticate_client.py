"""Authenticate a confidential client by its id and secret (RFC 6749 §2.3.1)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ledgerd.identity.application.ports import SecretChecker
from ledgerd.identity.domain.clients import OAuthClient
from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.identity.domain.repositories import ClientRepository
from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    client_id: str
    # Kept out of repr: a credentials value must be safe to log by accident.
    secret: str = field(repr=False)


class AuthenticateClient:
    """The client, or INVALID_CLIENT whatever went wrong.

    Unknown id, public client, revoked client and wrong secret answer alike and take alike
    long (an unknown client's secret is checked against a decoy hash), so neither the answer
    nor its timing tells which client ids exist.
    """

    def __init__(self, uow: UnitOfWork, clients: ClientRepository, secrets: SecretChecker) -> None:
        self._uow, self._clients, self._secrets = uow, clients, secrets

    async def __call__(self, credentials: ClientCredentials) -> OAuthClient:
        # The slow hash check runs after the transaction: it must not hold a connection.
        async with self._uow.begin(read_only=True):
            client = await self._clients.get(credentials.client_id)
        usable = client if client is not None and client.is_active else None
        secret_hash = None if usable is None else usable.secret_hash
        if not await self._secrets.check(secret_hash, credentials.secret) or usable is None:
            raise LedgerdError(IdentityErrorCode.INVALID_CLIENT, "client authentication failed")
        return usable
