"""The identity context's error table: each of its codes with its transport statuses and meaning.

The composition root registers it with the transports' catalogue, so the codes are known (and
cannot clash with another context's) and docs/api.md's error table prints them. The OAuth2
endpoints answer them in RFC 6749's own shape (`oauth_errors`); the statuses here are those of
the gRPC and REST API, where the pipeline's authentication will answer them too.
"""

from __future__ import annotations

from http import HTTPStatus

import grpc

from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.platform.api.errors import INVALID, ErrorSpec, ErrorTable, Transport

# Who the caller is could not be established (RFC 6750 §3.1's 401).
_UNAUTHENTICATED = Transport(grpc.StatusCode.UNAUTHENTICATED, HTTPStatus.UNAUTHORIZED)
_DENIED = Transport(grpc.StatusCode.PERMISSION_DENIED, HTTPStatus.FORBIDDEN)

IDENTITY_ERRORS: ErrorTable = {
    IdentityErrorCode.INVALID_CLIENT: ErrorSpec(
        _UNAUTHENTICATED,
        "The client could not be authenticated: unknown, revoked, or a wrong secret (one code"
        " for all, so that client ids cannot be probed).",
    ),
    IdentityErrorCode.INVALID_GRANT: ErrorSpec(
        INVALID,
        "The authorization code or refresh token is unknown, spent, expired, revoked, or was"
        " issued to another client; `details.reason` says which kind.",
    ),
    IdentityErrorCode.INVALID_SCOPE: ErrorSpec(
        INVALID, "A scope asked for is unknown or beyond what was granted."
    ),
    IdentityErrorCode.INVALID_REQUEST: ErrorSpec(
        INVALID,
        "An OAuth2 request is malformed: a parameter missing, repeated or not supported.",
    ),
    IdentityErrorCode.INVALID_REDIRECT_URI: ErrorSpec(
        INVALID, "The redirect URI is not one registered for the client, or the client is unknown."
    ),
    IdentityErrorCode.ACCESS_DENIED: ErrorSpec(
        _DENIED, "The user did not sign in (wrong username or password, disabled) or declined."
    ),
}
