"""Freeze, unfreeze or close an account."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ledgerd.kernel.ids import check_id
from ledgerd.kernel.unit_of_work import UnitOfWork, retry_on_conflict
from ledgerd.ledger.application._lookups import account_not_found, require_ledger
from ledgerd.ledger.domain.model import Account, AccountStatus
from ledgerd.ledger.domain.repositories import AccountRepository, LedgerRepository


@dataclass(frozen=True, slots=True)
class ChangeAccountStatus:
    ledger_id: str
    account_id: str
    status: AccountStatus


class ChangeAccountStatusHandler:
    """Frozen accounts take no new movements; closing is final and needs no pending holds."""

    def __init__(
        self, uow: UnitOfWork, ledgers: LedgerRepository, accounts: AccountRepository
    ) -> None:
        self._uow, self._ledgers, self._accounts = uow, ledgers, accounts

    async def __call__(self, command: ChangeAccountStatus) -> Account:
        check_id(command.ledger_id, "ledger_id")
        check_id(command.account_id, "account_id")
        return await retry_on_conflict(lambda: self._change(command))

    async def _change(self, command: ChangeAccountStatus) -> Account:
        async with self._uow.begin() as tx:
            found = await self._accounts.get_many(
                command.ledger_id, [command.account_id], for_update=True
            )
            account = found.get(command.account_id)
            if account is None:
                await require_ledger(self._ledgers, command.ledger_id)
                raise account_not_found(command.account_id)
            if account.status is command.status:
                return account
            changed = account.with_status(command.status)
            await self._accounts.update(changed, expected_version=account.version)
            await tx.commit()
            return dataclasses.replace(changed, version=account.version + 1)
