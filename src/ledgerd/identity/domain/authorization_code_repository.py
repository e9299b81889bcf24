"""The persistence port for authorization codes (SQL: ``identity/adapters``, revision i0002)."""

from __future__ import annotations

from typing import Protocol

from ledgerd.identity.domain.authorization_codes import AuthorizationCode


class AuthorizationCodeRepository(Protocol):
    async def add(self, code: AuthorizationCode) -> None: ...

    async def find_by_digest(self, code_digest: str) -> AuthorizationCode | None:
        """The code with this digest, redeemed or not (a redeemed code must stay findable)."""
        ...

    async def update(self, code: AuthorizationCode, *, was_redeemed: bool) -> None:
        """Store ``code`` if its redeemed state is still ``was_redeemed``.

        Otherwise another redemption of the same code won, and this raises
        ``ConcurrencyConflictError``: of two concurrent redemptions exactly one succeeds, and
        the retried other sees a redeemed code.
        """
        ...
