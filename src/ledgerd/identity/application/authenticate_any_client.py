"""Who is asking at the token endpoint: a confidential client by its secret, or a public one.

A public client (RFC 6749 §2.1) has no secret; it names itself with ``client_id``. It may use
the authorization-code grant, where PKCE binds the code to the instance that asked for it, then
refresh what that gave it, where rotation with reuse detection guards the refresh token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledgerd.identity.application.authenticate_client import AuthenticateClient, ClientCredentials
from ledgerd.identity.domain.clients import ClientKind, OAuthClient
from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.identity.domain.repositories import ClientRepository
from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class ClientIdentification:
    client_id: str
    # None: the caller claims to be a public client.
    secret: str | None = field(default=None, repr=False)


class IdentifyClient:
    def __init__(
        self, authenticate: AuthenticateClient, uow: UnitOfWork, clients: ClientRepository
    ) -> None:
        self._authenticate, self._uow, self._clients = authenticate, uow, clients

    async def __call__(self, identification: ClientIdentification) -> OAuthClient:
        """The client, or INVALID_CLIENT alike for every reason (see `AuthenticateClient`)."""
        if identification.secret is not None:
            return await self._authenticate(
                ClientCredentials(identification.client_id, identification.secret)
            )
        async with self._uow.begin(read_only=True):
            client = await self._clients.get(identification.client_id)
        # A confidential client that sends no secret is refused like an unknown one.
        if client is None or not client.is_active or client.kind is not ClientKind.PUBLIC:
            raise LedgerdError(IdentityErrorCode.INVALID_CLIENT, "client authentication failed")
        return client
