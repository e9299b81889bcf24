"""OAuth2 clients: confidential ones authenticate with a secret, public ones (PKCE) cannot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ledgerd.identity.domain.grants import AccessGrant


class ClientKind(StrEnum):
    # A service that keeps a secret (RFC 6749 §2.1): client credentials, refresh.
    CONFIDENTIAL = "confidential"
    # A browser or native app that cannot keep one: authorization code with PKCE only (and the
    # refreshes of the tokens it got).
    PUBLIC = "public"


@dataclass(frozen=True, slots=True)
class OAuthClient:
    client_id: str
    name: str
    kind: ClientKind
    # The argon2 hash of the secret (a confidential client's only); the secret itself is shown
    # once, when the client is created, and kept nowhere.
    secret_hash: str | None
    grant: AccessGrant
    created_at: datetime
    # Exact-match redirect URIs for the authorization-code flow (RFC 6749 §3.1.2).
    redirect_uris: tuple[str, ...] = ()
    revoked_at: datetime | None = None

    def __post_init__(self) -> None:
        if (self.kind is ClientKind.CONFIDENTIAL) != (self.secret_hash is not None):
            msg = "a confidential client has a secret hash and a public client has none"
            raise ValueError(msg)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
