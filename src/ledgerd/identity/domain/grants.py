"""What a client or user was granted: scopes, and the ledgers they apply to."""

from __future__ import annotations

from dataclasses import dataclass

from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.identity.domain.scopes import Scope
from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.principal import LedgerGrant, Principal


@dataclass(frozen=True, slots=True)
class AccessGrant:
    scopes: frozenset[Scope]
    ledgers: LedgerGrant

    def narrowed_to(self, requested: frozenset[Scope] | None) -> AccessGrant:
        """The grant a token gets when ``requested`` scopes are asked for.

        No request means everything granted (RFC 6749 §3.3 lets the server pick the default);
        asking for a scope beyond the grant is INVALID_SCOPE, never a silent narrowing, so a
        client learns at once that its configuration and its grant disagree.
        """
        if requested is None:
            return self
        beyond = sorted(requested - self.scopes)
        if beyond:
            raise LedgerdError(
                IdentityErrorCode.INVALID_SCOPE,
                f"scope {beyond[0]} is not granted to this client",
                {"scope": beyond[0]},
            )
        return AccessGrant(requested, self.ledgers)

    def principal(self, subject: str) -> Principal:
        return Principal(subject, frozenset(str(scope) for scope in self.scopes), self.ledgers)
