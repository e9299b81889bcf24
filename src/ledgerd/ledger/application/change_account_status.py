"""Freeze, unfreeze or close an account."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ledgerd.kernel.ids import check_id
from ledgerd.kernel.unit_of_work import UnitOfWork, retry_on_conflict
from ledgerd.ledger.application._lookups import account_not_found, require_ledger
from ledgerd.ledger.domain.events import AccountClosed, AccountEvent, AccountFrozen, AccountUnfrozen
from ledgerd.ledger.domain.model import Account, AccountStatus
from ledgerd.ledger.domain.repositories import AccountRepository, EventOutbox, LedgerRepository


@dataclass(frozen=True, slots=True)
class ChangeAccountStatus:
    ledger_id: str
    account_id: str
    status: AccountStatus


class ChangeAccountStatusHandler:
    """Frozen accounts take no new movements; closing is final and needs no pending holds."""

    def __init__(
        self,
        uow: UnitOfWork,
        ledgers: LedgerRepository,
        accounts: AccountRepository,
        events: EventOutbox,
    ) -> None:
        self._uow, self._ledgers, self._accounts, self._events = uow, ledgers, accounts, events

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
            stored = dataclasses.replace(changed, version=account.version + 1)
            await self._events.record([_status_event(stored)])
            await tx.commit()
            return stored


def _status_event(account: Account) -> AccountEvent:
    match account.status:
        case AccountStatus.FROZEN:
            return AccountFrozen(account)
        case AccountStatus.CLOSED:
            return AccountClosed(account)
        case AccountStatus.OPEN:
            return AccountUnfrozen(account)
