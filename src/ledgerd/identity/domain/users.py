"""Users: people who sign in through the browser flow and act through a client."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ledgerd.identity.domain.grants import AccessGrant


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    username: str
    # The argon2 hash of the password; the password is never stored.
    password_hash: str
    # What the user may do; a token for the user through a client gets the scopes both allow.
    grant: AccessGrant
    created_at: datetime
    disabled_at: datetime | None = None

    @property
    def is_active(self) -> bool:
        return self.disabled_at is None
