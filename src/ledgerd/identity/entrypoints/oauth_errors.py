"""Errors as the OAuth2 RFCs shape them: RFC 6749 §5.2 JSON at the token and revoke endpoints.

The body has ``error`` (a registered name) and ``error_description`` (human-readable ASCII, never
a token, secret or anything the caller sent but a parameter's name), and the response is never
cached.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from starlette.responses import JSONResponse

from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.kernel.errors import ErrorCode, LedgerdError

NO_STORE: Final = MappingProxyType({"cache-control": "no-store", "pragma": "no-cache"})

# The realm a client is told to authenticate in after a failed HTTP Basic authentication.
BASIC_CHALLENGE: Final = 'Basic realm="ledgerd", charset="UTF-8"'


@dataclass(frozen=True, slots=True)
class OAuthError(Exception):
    error: str
    description: str
    status: int = 400
    headers: Mapping[str, str] = field(default_factory=dict)

    def response(self) -> JSONResponse:
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, self.status, headers={**NO_STORE, **self.headers})


def invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def invalid_client(*, basic_used: bool) -> OAuthError:
    # RFC 6749 §5.2: 401, with a challenge for the scheme the client tried if it used one.
    headers = {"www-authenticate": BASIC_CHALLENGE} if basic_used else {}
    return OAuthError("invalid_client", "client authentication failed", 401, headers)


# The token endpoint's answers for the use cases' codes (RFC 6749 §5.2).
_TOKEN_ERRORS: Final = MappingProxyType(
    {
        IdentityErrorCode.INVALID_GRANT: "invalid_grant",
        IdentityErrorCode.INVALID_SCOPE: "invalid_scope",
        IdentityErrorCode.INVALID_REQUEST: "invalid_request",
        ErrorCode.VALIDATION_FAILED: "invalid_request",
    }
)


def token_error(error: LedgerdError, *, basic_used: bool) -> OAuthError:
    """The RFC 6749 §5.2 answer for a use case's refusal; other errors are not refusals."""
    if error.code is IdentityErrorCode.INVALID_CLIENT:
        return invalid_client(basic_used=basic_used)
    name = _TOKEN_ERRORS.get(error.code)
    if name is None:
        raise error
    return OAuthError(name, error.message)


# The authorization endpoint's error names (RFC 6749 §4.1.2.1) for the use cases' codes.
AUTHORIZATION_ERRORS: Final = MappingProxyType(
    {
        IdentityErrorCode.INVALID_REQUEST: "invalid_request",
        IdentityErrorCode.INVALID_SCOPE: "invalid_scope",
        IdentityErrorCode.ACCESS_DENIED: "access_denied",
        ErrorCode.VALIDATION_FAILED: "invalid_request",
    }
)
