"""What a user's token through a client may do: what both the user and the client were granted."""

from __future__ import annotations

from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.kernel.principal import ALL_LEDGERS, LedgerGrant


def grant_through_client(user: AccessGrant, client: AccessGrant) -> AccessGrant:
    """The intersection of the two grants: a client acts for a user, never beyond either."""
    return AccessGrant(user.scopes & client.scopes, _common_ledgers(user.ledgers, client.ledgers))


def _common_ledgers(first: LedgerGrant, second: LedgerGrant) -> LedgerGrant:
    if first is ALL_LEDGERS:
        return second
    if second is ALL_LEDGERS:
        return first
    return first & second
