"""The client-credentials grant (RFC 6749 §4.4): a service gets an access token for itself."""

from __future__ import annotations

from dataclasses import dataclass

from ledgerd.identity.application.authenticate_client import AuthenticateClient, ClientCredentials
from ledgerd.identity.application.ports import AccessTokenMinter
from ledgerd.identity.application.token_response import TokenResponse
from ledgerd.identity.domain.scopes import parse_scopes


@dataclass(frozen=True, slots=True)
class ClientCredentialsRequest:
    credentials: ClientCredentials
    # The ``scope`` parameter as sent; None when absent (then every granted scope).
    scope: str | None = None


class IssueClientCredentialsToken:
    """An access token whose subject is the client, with the scopes asked for and granted.

    No refresh token: RFC 6749 §4.4.3 advises against one here, since the client can always
    authenticate again with its secret, and a refresh token would only be one more credential
    to steal.
    """

    def __init__(self, authenticate: AuthenticateClient, access_tokens: AccessTokenMinter) -> None:
        self._authenticate, self._access_tokens = authenticate, access_tokens

    async def __call__(self, request: ClientCredentialsRequest) -> TokenResponse:
        # Authentication first: an unauthenticated caller learns nothing about scopes.
        client = await self._authenticate(request.credentials)
        requested = None if request.scope is None else parse_scopes(request.scope)
        grant = client.grant.narrowed_to(requested)
        access = self._access_tokens.issue(grant.principal(client.client_id))
        return TokenResponse(access.token, access.expires_at, grant.scopes)
