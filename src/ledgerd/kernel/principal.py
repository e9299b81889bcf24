"""Who is calling: the principal an access token names, read by the pipeline and every context.

It lives in the kernel because the request pipeline (platform) puts it in the call's context and
each context reads it to decide what the caller may see; none of them may import another's model.

The caller of the call being served is held in one contextvar, like the deadline
(:mod:`ledgerd.kernel.deadline`): the pipeline's authentication runs the rest of the call inside
``principal_scope(principal)``, and a use case asks ``current_principal()``. None there means no
authentication is configured, and the caller may see everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
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
    # When its credentials stop being valid (an access token's expiry): a long-lived call, a
    # stream of events, ends then. None: they do not expire while the process runs (mTLS).
    # Not part of who the principal is: two tokens of one grant name the same principal.
    expires_at: datetime | None = field(default=None, compare=False)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def may_use_ledger(self, ledger_id: str) -> bool:
        return self.ledgers is ALL_LEDGERS or ledger_id in self.ledgers


_principal: ContextVar[Principal | None] = ContextVar("ledgerd_principal", default=None)


def current_principal() -> Principal | None:
    """The caller of the call being served, or None when calls are not authenticated."""
    return _principal.get()


@contextmanager
def principal_scope(principal: Principal) -> Iterator[None]:
    """Run the block, and any task it starts, as ``principal``."""
    token = _principal.set(principal)
    try:
        yield
    finally:
        _principal.reset(token)
