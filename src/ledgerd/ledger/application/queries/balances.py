"""An account's balances at an instant: what GetBalance and BatchGetBalances answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ledgerd.ledger.domain.model import Account, Balances
from ledgerd.ledger.domain.repositories import JournalRepository


@dataclass(frozen=True, slots=True)
class AccountBalance:
    """An account's balances at an instant (now, or ``as_of``), with what is available."""

    account: Account
    balances: Balances
    available: int
    as_of: datetime | None


async def balance_of(
    journal: JournalRepository, account: Account, as_of: datetime | None
) -> AccountBalance:
    """``account``'s balances now (as loaded), or from the journal as they were at ``as_of``."""
    if as_of is None:
        balances = account.balances
    else:
        balances = await journal.balances_as_of(account.ledger_id, account.id, as_of)
    return AccountBalance(account, balances, balances.available(account.normal_side), as_of)
