"""Create a ledger: a tenant with its own accounts, transfers and hash chain.

When calls are authenticated, the ledger is granted to the principal creating it, in the unit of
work that creates it: a ledger nobody may use cannot be left behind, nor a grant of one never
created. The grant is the identity context's to record; the ledger asks through its port.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.ids import check_id
from ledgerd.kernel.metadata import Metadata, check_metadata
from ledgerd.kernel.principal import Principal, current_principal
from ledgerd.kernel.text import check_text
from ledgerd.kernel.unit_of_work import UnitOfWork, retry_on_conflict
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.events import LedgerCreated
from ledgerd.ledger.domain.model import Ledger
from ledgerd.ledger.domain.repositories import EventOutbox, LedgerRepository

MAX_NAME_LENGTH = 200


@dataclass(frozen=True, slots=True)
class CreateLedger:
    ledger_id: str
    name: str = ""
    metadata: Metadata = field(default_factory=dict)


class LedgerCreatorGrants(Protocol):
    """Records that ``principal`` may use ``ledger_id``, in the unit of work in progress."""

    async def grant(self, principal: Principal, ledger_id: str) -> None: ...


class CreateLedgerHandler:
    """Creating the same ledger twice returns it; a different one under a taken id is an error.

    "The same ledger" is returned only to a caller that may use it: to another, it is taken.
    """

    def __init__(
        self,
        uow: UnitOfWork,
        ledgers: LedgerRepository,
        events: EventOutbox,
        clock: Clock,
        creator_grants: LedgerCreatorGrants,
    ) -> None:
        self._uow, self._ledgers, self._events, self._clock = uow, ledgers, events, clock
        self._creator_grants = creator_grants

    async def __call__(self, command: CreateLedger) -> Ledger:
        check_id(command.ledger_id, "ledger_id")
        check_text(command.name, "name", max_length=MAX_NAME_LENGTH)
        metadata = check_metadata(command.metadata)
        return await retry_on_conflict(lambda: self._create(command, metadata))

    async def _create(self, command: CreateLedger, metadata: Metadata) -> Ledger:
        creator = current_principal()  # None: calls are not authenticated
        async with self._uow.begin() as tx:
            existing = await self._ledgers.get(command.ledger_id)
            if existing is not None:
                # To a caller that may not use it, only that the id is taken: not its attributes.
                visible = creator is None or creator.may_use_ledger(existing.id)
                same = (existing.name, dict(existing.metadata)) == (command.name, dict(metadata))
                if visible and same:
                    return existing
                raise LedgerdError(
                    LedgerErrorCode.LEDGER_ALREADY_EXISTS,
                    f"ledger {command.ledger_id} already exists"
                    + (" with other attributes" if visible else ""),
                    {"ledger": command.ledger_id},
                )
            ledger = Ledger(command.ledger_id, command.name, metadata, self._clock.now())
            await self._ledgers.add(ledger)
            if creator is not None:
                await self._creator_grants.grant(creator, ledger.id)
            await self._events.record([LedgerCreated(ledger)])
            await tx.commit()
            return ledger
