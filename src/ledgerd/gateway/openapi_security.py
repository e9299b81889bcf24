"""The OAuth2 security scheme of the OpenAPI document, and each operation's requirement.

Every operation names the one scope its RPC needs (the contexts' access tables, merged by
``ledgerd.main.bounded_context.merged_access``); a public method is marked as needing no
token. An operation whose RPC has no entry is refused rather than shown as open: the table is
what the server enforces, and the document must not promise less.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ledgerd.gateway.json_schema import JsonObject
from ledgerd.platform.api.access import MethodAccess

SCHEME = "oauth2"

SCHEME_DESCRIPTION = """\
OAuth 2.0 access tokens, sent as `Authorization: Bearer <token>` (RFC 6750). A service
obtains one with the client credentials grant; an application acting for a user with the
authorization code grant, in which PKCE (RFC 7636) with the `S256` method is required.
Each operation needs one scope, and a token is only good for the ledgers granted to its
client or user."""

TOKENS_REQUIRED = """\
Every operation needs an access token (`Authorization: Bearer <token>`, see the `oauth2`
security scheme) carrying the scope the operation names, for a ledger the token is granted. No
token or an invalid one is answered 401, a token without the scope 403, and a ledger outside
the grant exactly as a ledger that does not exist (404)."""


@dataclass(frozen=True, slots=True)
class OAuth2Security:
    """What the document says of access: the scopes, and each method's by gRPC method path."""

    # Each scope a token can carry, with what it lets its holder do.
    scopes: Mapping[str, str]
    # What each method requires, by gRPC method path ("/ledgerd.v1.LedgerService/GetBalance").
    access: Mapping[str, MethodAccess]
    # The authorization server's endpoints, relative to the server the document is fetched from.
    token_url: str
    authorization_url: str

    def scheme(self) -> JsonObject:
        """The ``oauth2`` entry of ``components.securitySchemes``."""
        scopes = dict(self.scopes)
        return {
            "type": "oauth2",
            "description": SCHEME_DESCRIPTION,
            "flows": {
                "clientCredentials": {"tokenUrl": self.token_url, "scopes": scopes},
                "authorizationCode": {
                    "authorizationUrl": self.authorization_url,
                    "tokenUrl": self.token_url,
                    "scopes": dict(scopes),
                },
            },
        }

    def requirement(self, grpc_path: str) -> list[JsonObject]:
        """An operation's ``security``: its scope, or none needed (``[]``) for a public one."""
        access = self.access.get(grpc_path)
        if access is None:
            msg = f"{grpc_path}: no access entry, so no scope to document (or to enforce)"
            raise ValueError(msg)
        if access.public or access.scope is None:
            return []
        if access.scope not in self.scopes:
            msg = f"{grpc_path}: scope {access.scope!r} is not one the scheme lists"
            raise ValueError(msg)
        return [{SCHEME: [access.scope]}]
