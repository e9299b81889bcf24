"""The identity context's error codes: why a client or a token request was refused.

They mirror the RFC 6749 §5.2 error names the token endpoint will answer with (lower-cased
there); the OAuth2 endpoints (``identity/entrypoints/oauth_errors.py``) map them to RFC 6749
error names and HTTP statuses.
"""

from __future__ import annotations

from enum import StrEnum


class IdentityErrorCode(StrEnum):
    """The identity context's codes; their spelling is part of the API."""

    # The client could not be authenticated: unknown id, wrong secret, revoked. One code for
    # all three, so the answer never says whether a client id exists.
    INVALID_CLIENT = "INVALID_CLIENT"
    # The grant presented (a refresh token, later an authorization code) is not valid for this
    # client: unknown, used, expired, revoked.
    INVALID_GRANT = "INVALID_GRANT"
    # A requested scope is unknown or beyond what the client was granted.
    INVALID_SCOPE = "INVALID_SCOPE"
    # An authorization request that is malformed: a parameter missing, repeated or
    # unsupported (a response type other than code, PKCE without S256).
    INVALID_REQUEST = "INVALID_REQUEST"
    # The redirect URI is not one registered for the client, or the client is unknown: the
    # authorization endpoint answers with an error page, never a redirect to that URI.
    INVALID_REDIRECT_URI = "INVALID_REDIRECT_URI"
    # The user did not sign in (wrong username or password, a disabled user) or declined.
    ACCESS_DENIED = "ACCESS_DENIED"
