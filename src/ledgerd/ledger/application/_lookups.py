"""Lookups several use cases share, raising the not-found errors clients expect."""

from __future__ import annotations

from ledgerd.kernel.errors import LedgerdError
from ledgerd.ledger.domain.errors import LedgerErrorCode, ledger_not_found
from ledgerd.ledger.domain.model import Account, Ledger
from ledgerd.ledger.domain.repositories import AccountRepository, LedgerRepository

# ledger_not_found lives in the domain now (published for other contexts); its callers here
# keep importing it from this module.
__all__ = ["account_not_found", "ledger_not_found", "require_account", "require_ledger"]


def account_not_found(account_id: str) -> LedgerdError:
    return LedgerdError(
        LedgerErrorCode.ACCOUNT_NOT_FOUND,
        f"account {account_id} does not exist",
        {"account": account_id},
    )


async def require_ledger(ledgers: LedgerRepository, ledger_id: str) -> Ledger:
    ledger = await ledgers.get(ledger_id)
    if ledger is None:
        raise ledger_not_found(ledger_id)
    return ledger


async def require_account(
    ledgers: LedgerRepository, accounts: AccountRepository, ledger_id: str, account_id: str
) -> Account:
    account = await accounts.get((ledger_id, account_id))
    if account is None:
        await require_ledger(ledgers, ledger_id)
        raise account_not_found(account_id)
    return account
