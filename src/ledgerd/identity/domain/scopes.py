"""The scopes a token can carry, and what each lets its holder do.

Each RPC will declare the one scope it needs (issue 14, item 5). A scope is about the kind of
action; which ledgers it applies to is the grant's other half.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.kernel.errors import LedgerdError


class Scope(StrEnum):
    LEDGER_READ = "ledger.read"
    LEDGER_WRITE = "ledger.write"
    TRANSFERS_WRITE = "transfers.write"
    LEDGERS_ADMIN = "ledgers.admin"
    WEBHOOKS_READ = "webhooks.read"
    WEBHOOKS_WRITE = "webhooks.write"


SCOPE_MEANINGS: Final[Mapping[Scope, str]] = MappingProxyType(
    {
        Scope.LEDGER_READ: (
            "read a granted ledger: the ledger, its accounts, balances, transfers, entries and "
            "statements"
        ),
        Scope.LEDGER_WRITE: "open accounts in a granted ledger and update their metadata",
        Scope.TRANSFERS_WRITE: (
            "move money in a granted ledger: post transfers, capture or void pending ones, "
            "reverse posted ones"
        ),
        Scope.LEDGERS_ADMIN: (
            "create ledgers (granted to the creating client) and freeze, unfreeze or close "
            "accounts of a granted ledger"
        ),
        Scope.WEBHOOKS_READ: (
            "see a granted ledger's webhooks: their URLs, filters, delivery attempts and dead "
            "letters"
        ),
        Scope.WEBHOOKS_WRITE: (
            "register, change, disable, enable and delete a granted ledger's webhooks, rotate "
            "their secrets and replay their dead letters: ledgerd then sends the ledger's events "
            "to the URLs given"
        ),
    }
)

# RFC 6749 §3.3: scope = scope-token *( SP scope-token ), scope-token = 1*NQCHAR.
_SCOPE_PARAMETER: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*")


def parse_scopes(text: str) -> frozenset[Scope]:
    """The scopes a ``scope`` parameter names; INVALID_SCOPE if malformed or one is unknown."""
    if not _SCOPE_PARAMETER.fullmatch(text):
        raise LedgerdError(IdentityErrorCode.INVALID_SCOPE, "the scope parameter is malformed")
    names = text.split(" ")
    known = {scope.value for scope in Scope}
    unknown = sorted(name for name in names if name not in known)
    if unknown:
        raise LedgerdError(
            IdentityErrorCode.INVALID_SCOPE, f"unknown scope {unknown[0]!r}", {"scope": unknown[0]}
        )
    return frozenset(Scope(name) for name in names)
