"""BatchGetBalances: many accounts' balances at one instant, in order, all or none."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ledgerd.kernel.errors import validation_error
from ledgerd.kernel.ids import check_id
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.application._lookups import account_not_found, require_ledger
from ledgerd.ledger.application.queries._checks import check_as_of
from ledgerd.ledger.application.queries.balances import AccountBalance, balance_of
from ledgerd.ledger.domain.repositories import (
    AccountRepository,
    JournalRepository,
    LedgerRepository,
)

# BatchGetBalances answers at most this many accounts in one call.
MAX_BALANCES_PER_BATCH = 100


class GetBalancesQuery:
    def __init__(
        self,
        uow: UnitOfWork,
        ledgers: LedgerRepository,
        accounts: AccountRepository,
        journal: JournalRepository,
    ) -> None:
        self._uow, self._ledgers, self._accounts, self._journal = uow, ledgers, accounts, journal

    async def __call__(
        self, ledger_id: str, account_ids: Sequence[str], as_of: datetime | None = None
    ) -> list[AccountBalance]:
        """One balance per id, in order (an id asked twice is answered twice); all or none."""
        check_id(ledger_id, "ledger_id")
        if not account_ids:
            raise validation_error("accounts", "needs at least one account id")
        if len(account_ids) > MAX_BALANCES_PER_BATCH:
            raise validation_error(
                "accounts", f"may name at most {MAX_BALANCES_PER_BATCH} accounts"
            )
        for index, account_id in enumerate(account_ids):
            check_id(account_id, f"accounts[{index}]")
        check_as_of(as_of)
        async with self._uow.begin(read_only=True):
            found = await self._accounts.get_many(ledger_id, set(account_ids))
            missing = next((one for one in account_ids if one not in found), None)
            if missing is not None:
                await require_ledger(self._ledgers, ledger_id)
                raise account_not_found(missing)
            balances = {
                account_id: await balance_of(self._journal, account, as_of)
                for account_id, account in found.items()
            }
        return [balances[account_id] for account_id in account_ids]
