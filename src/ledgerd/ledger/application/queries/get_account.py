"""GetAccount: one account of a ledger."""

from __future__ import annotations

from ledgerd.kernel.ids import check_id
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.application._lookups import require_account
from ledgerd.ledger.domain.model import Account
from ledgerd.ledger.domain.repositories import AccountRepository, LedgerRepository


class GetAccountQuery:
    def __init__(
        self, uow: UnitOfWork, ledgers: LedgerRepository, accounts: AccountRepository
    ) -> None:
        self._uow, self._ledgers, self._accounts = uow, ledgers, accounts

    async def __call__(self, ledger_id: str, account_id: str) -> Account:
        check_id(ledger_id, "ledger_id")
        check_id(account_id, "account_id")
        async with self._uow.begin(read_only=True):
            return await require_account(self._ledgers, self._accounts, ledger_id, account_id)
