"""Check an authorization request (RFC 6749 §4.1.1 with RFC 7636 §4.3) before anyone signs in.

The order matters. The client and its redirect URI are checked first, and a fault there is
INVALID_REDIRECT_URI: the endpoint shows an error page and never redirects, since sending the
user agent to an unchecked URI would make the server an open redirector (RFC 6749 §4.1.2.1).
Once the URI is known good, every other fault (INVALID_REQUEST, INVALID_SCOPE) goes back to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledgerd.identity.domain.authorization_codes import S256, is_s256_challenge
from ledgerd.identity.domain.clients import OAuthClient
from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.identity.domain.repositories import ClientRepository
from ledgerd.identity.domain.scopes import Scope, parse_scopes
from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.unit_of_work import UnitOfWork

RESPONSE_TYPE_CODE = "code"


@dataclass(frozen=True, slots=True)
class AuthorizationParameters:
    """The request's parameters as sent; None for one that is absent."""

    client_id: str | None
    redirect_uri: str | None
    response_type: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    scope: str | None = None
    state: str | None = None


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A checked request: the client, where to send the user back, and what is asked for."""

    client: OAuthClient
    redirect_uri: str
    code_challenge: str
    # None: no scope asked for, so everything granted (narrowed to the user's grant later).
    scopes: frozenset[Scope] | None
    state: str | None


class CheckAuthorizationRequest:
    def __init__(self, uow: UnitOfWork, clients: ClientRepository) -> None:
        self._uow, self._clients = uow, clients

    async def __call__(self, parameters: AuthorizationParameters) -> AuthorizationRequest:
        client = await self._client(parameters.client_id)
        redirect_uri = parameters.redirect_uri
        # Exact string match against the registered URIs (RFC 6749 §3.1.2.3, OAuth 2.0
        # Security BCP §4.1.3): no prefix, no normalisation, and a URI is always required,
        # even for a client with a single registered one.
        if client is None or redirect_uri is None or redirect_uri not in client.redirect_uris:
            raise LedgerdError(
                IdentityErrorCode.INVALID_REDIRECT_URI,
                "unknown client, or a redirect URI not registered for it",
            )
        if parameters.response_type != RESPONSE_TYPE_CODE:
            raise LedgerdError(
                IdentityErrorCode.INVALID_REQUEST,
                "response_type must be code",
                {"field": "response_type"},
            )
        challenge = _checked_challenge(parameters)
        scopes = None if parameters.scope is None else parse_scopes(parameters.scope)
        if scopes is not None:
            client.grant.narrowed_to(scopes)  # INVALID_SCOPE beyond the client's grant
        return AuthorizationRequest(client, redirect_uri, challenge, scopes, parameters.state)

    async def _client(self, client_id: str | None) -> OAuthClient | None:
        if client_id is None:
            return None
        async with self._uow.begin(read_only=True):
            client = await self._clients.get(client_id)
        return client if client is not None and client.is_active else None


def _checked_challenge(parameters: AuthorizationParameters) -> str:
    # PKCE is required of every client, confidential ones too (OAuth 2.0 Security BCP §2.1.1).
    if parameters.code_challenge is None:
        raise LedgerdError(
            IdentityErrorCode.INVALID_REQUEST,
            "code_challenge is required (PKCE, RFC 7636)",
            {"field": "code_challenge"},
        )
    if parameters.code_challenge_method != S256:
        raise LedgerdError(
            IdentityErrorCode.INVALID_REQUEST,
            "code_challenge_method must be S256",
            {"field": "code_challenge_method"},
        )
    if not is_s256_challenge(parameters.code_challenge):
        raise LedgerdError(
            IdentityErrorCode.INVALID_REQUEST,
            "code_challenge is not an S256 challenge",
            {"field": "code_challenge"},
        )
    return parameters.code_challenge
