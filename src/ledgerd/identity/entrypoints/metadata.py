"""Authorization server metadata (RFC 8414) for the endpoints this context serves."""

from __future__ import annotations

from typing import Any

from ledgerd.identity.domain.authorization_codes import S256
from ledgerd.identity.domain.scopes import Scope

TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a path, not a password
AUTHORIZE_PATH = "/oauth2/authorize"
REVOKE_PATH = "/oauth2/revoke"
METADATA_PATH = "/.well-known/oauth-authorization-server"
JWKS_PATH = "/.well-known/jwks.json"


def authorization_server_metadata(issuer: str) -> dict[str, Any]:
    """The metadata document; ``issuer`` is the origin the endpoints are served under.

    RFC 8414 §3: the document of an issuer with no path is at ``/.well-known/oauth-
    authorization-server``, which is where this app serves it, so the issuer must be an origin
    (``https://host[:port]``), which `OAuthSettings` checks.
    """
    auth_methods = ["client_secret_basic", "client_secret_post", "none"]
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + AUTHORIZE_PATH,
        "token_endpoint": issuer + TOKEN_PATH,
        "revocation_endpoint": issuer + REVOKE_PATH,
        "jwks_uri": issuer + JWKS_PATH,
        "scopes_supported": sorted(scope.value for scope in Scope),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": [S256],
        # RFC 9207: the authorization response names the issuer (mix-up attacks).
        "authorization_response_iss_parameter_supported": True,
    }
