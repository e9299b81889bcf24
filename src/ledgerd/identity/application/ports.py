"""What the identity use cases need from outside the context: token signing, hashing, randomness.

``ledgerd.platform.auth`` implements each (`AccessTokenIssuer`, `SecretHasher`, `OpaqueTokens`);
the composition root hands them in, so the use cases hold no cryptography of their own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ledgerd.kernel.principal import Principal


class MintedAccessToken(Protocol):
    @property
    def token(self) -> str: ...

    @property
    def expires_at(self) -> datetime: ...


class AccessTokenMinter(Protocol):
    def issue(self, principal: Principal, family_id: str | None = None) -> MintedAccessToken:
        """A signed access token for ``principal``, tied to a refresh family if one is given."""
        ...


class SecretChecker(Protocol):
    async def check(self, secret_hash: str | None, secret: str) -> bool:
        """Whether ``secret`` matches ``secret_hash``; with None, as long a check, and False."""
        ...


class SecretHashing(Protocol):
    def hash(self, secret: str) -> str:
        """A slow, salted hash of ``secret`` to store in its place (argon2id)."""
        ...


class RefreshTokenMaker(Protocol):
    def new_token(self) -> str: ...

    def digest(self, token: str) -> str: ...
