"""The identity context's persistence ports; the SQL adapters are in ``identity/adapters``."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ledgerd.identity.domain.clients import OAuthClient
from ledgerd.identity.domain.refresh_families import RefreshFamily
from ledgerd.identity.domain.users import User


class ClientRepository(Protocol):
    async def get(self, client_id: str) -> OAuthClient | None: ...

    async def add(self, client: OAuthClient) -> None: ...


class ClientDirectory(Protocol):
    """What operators do with clients beside authenticating them: list and revoke."""

    async def list_all(self) -> list[OAuthClient]:
        """Every client, revoked ones too, oldest first."""
        ...

    async def revoke(self, client_id: str, at: datetime) -> bool:
        """Mark the client revoked at ``at``; False if there is no such client or it was already."""
        ...

    async def replace_secret(self, client_id: str, secret_hash: str) -> bool:
        """Store a new secret hash for an active confidential client; False for any other.

        The old secret authenticates no more from the commit on; tokens it got stay valid
        until they expire.
        """
        ...


class UserRepository(Protocol):
    async def get_by_username(self, username: str) -> User | None: ...

    async def add(self, user: User) -> None: ...


class RefreshFamilyRepository(Protocol):
    async def find_by_token_digest(self, digest: str) -> RefreshFamily | None:
        """The family that issued the token with this digest, current or already used."""
        ...

    async def add(self, family: RefreshFamily) -> None: ...

    async def update(self, family: RefreshFamily, *, read_generation: int) -> None:
        """Store ``family`` (and index its current digest) if nobody changed it since it was read.

        The stored generation must still be ``read_generation``; otherwise another use of the
        same token won, and this raises ``ConcurrencyConflictError``.
        """
        ...

    async def is_revoked(self, family_id: str) -> bool:
        """The revocation check the request pipeline makes for a token's ``fam`` claim."""
        ...
