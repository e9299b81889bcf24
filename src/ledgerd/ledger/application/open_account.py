"""Open an account in a ledger, under an id the client chooses."""

from __future__ import annotations

from dataclasses import dataclass, field

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.ids import check_id
from ledgerd.kernel.metadata import Metadata, check_metadata
from ledgerd.kernel.money import Asset
from ledgerd.kernel.unit_of_work import UnitOfWork, retry_on_conflict
from ledgerd.ledger.application._lookups import require_ledger
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.events import AccountCreated
from ledgerd.ledger.domain.model import Account, AccountFlags, new_account
from ledgerd.ledger.domain.repositories import AccountRepository, EventOutbox, LedgerRepository


@dataclass(frozen=True, slots=True)
class OpenAccount:
    ledger_id: str
    account_id: str
    asset: Asset
    flags: AccountFlags = field(default_factory=AccountFlags)
    metadata: Metadata = field(default_factory=dict)


class OpenAccountHandler:
    """Opening the same account twice returns it; a different one under a taken id fails."""

    def __init__(
        self,
        uow: UnitOfWork,
        ledgers: LedgerRepository,
        accounts: AccountRepository,
        events: EventOutbox,
        clock: Clock,
    ) -> None:
        self._uow, self._ledgers, self._accounts = uow, ledgers, accounts
        self._events, self._clock = events, clock

    async def __call__(self, command: OpenAccount) -> Account:
        check_id(command.ledger_id, "ledger_id")
        check_id(command.account_id, "account_id")
        metadata = check_metadata(command.metadata)
        return await retry_on_conflict(lambda: self._open(command, metadata))

    async def _open(self, command: OpenAccount, metadata: Metadata) -> Account:
        async with self._uow.begin() as tx:
            await require_ledger(self._ledgers, command.ledger_id)
            existing = await self._accounts.get((command.ledger_id, command.account_id))
            if existing is not None:
                same = (existing.asset, existing.flags, dict(existing.metadata)) == (
                    command.asset,
                    command.flags,
                    dict(metadata),
                )
                if same:
                    return existing
                raise LedgerdError(
                    LedgerErrorCode.ACCOUNT_ALREADY_EXISTS,
                    f"account {command.account_id} already exists with other attributes",
                    {"account": command.account_id},
                )
            account = new_account(
                command.ledger_id,
                command.account_id,
                command.asset,
                self._clock.now(),
                flags=command.flags,
                metadata=metadata,
            )
            await self._accounts.add(account)
            await self._events.record([AccountCreated(account)])
            await tx.commit()
            return account
