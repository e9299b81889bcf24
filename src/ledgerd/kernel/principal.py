"""Who is calling: the principal an access token names, read by the pipeline and every context.

It lives in the kernel because the request pipeline (platform) puts it in the call's context and
each context reads it to decide what the caller may see; none of them may import another's model.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal


class AllLedgers(Enum):
    """The grant of every ledger, present and future (an administrator's client)."""

    ALL = "*"


ALL_LEDGERS: Final = AllLedgers.ALL

# The ledgers a principal may use: a set of ledger ids, or every ledger.
LedgerGrant = frozenset[str] | Literal[AllLedgers.ALL]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: its subject, the scopes it was granted and its ledgers."""

    subject: str
    scopes: frozenset[str]
    ledgers: LedgerGrant

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def may_use_ledger(self, ledger_id: str) -> bool:
        return self.ledgers is ALL_LEDGERS or ledger_id in self.ledgers
