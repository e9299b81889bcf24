"""What a successful token request yields, before the endpoint renders it (RFC 6749 §5.1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ledgerd.identity.domain.scopes import Scope


@dataclass(frozen=True, slots=True)
class TokenResponse:
    access_token: str
    expires_at: datetime
    # The scopes granted, which the response states when they differ from those requested.
    scopes: frozenset[Scope]
    refresh_token: str | None = None
