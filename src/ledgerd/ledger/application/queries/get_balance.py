"""GetBalance: an account's balances now, or as they were at an instant."""

from __future__ import annotations

from datetime import datetime

from ledgerd.kernel.ids import check_id
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.application._lookups import require_account
from ledgerd.ledger.application.queries._checks import check_as_of
from ledgerd.ledger.application.queries.balances import AccountBalance, balance_of
from ledgerd.ledger.domain.repositories import (
    AccountRepository,
    JournalRepository,
    LedgerRepository,
)


class GetBalanceQuery:
    def __init__(
        self,
        uow: UnitOfWork,
        ledgers: LedgerRepository,
        accounts: AccountRepository,
        journal: JournalRepository,
    ) -> None:
        self._uow, self._ledgers, self._accounts, self._journal = uow, ledgers, accounts, journal

    async def __call__(
        self, ledger_id: str, account_id: str, as_of: datetime | None = None
    ) -> AccountBalance:
        check_id(ledger_id, "ledger_id")
        check_id(account_id, "account_id")
        check_as_of(as_of)
        async with self._uow.begin(read_only=True):
            account = await require_account(self._ledgers, self._accounts, ledger_id, account_id)
            return await balance_of(self._journal, account, as_of)
