"""Create a ledger: a tenant with its own accounts, transfers and hash chain."""

from __future__ import annotations

from dataclasses import dataclass, field

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.ids import check_id
from ledgerd.kernel.metadata import Metadata, check_metadata
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


class CreateLedgerHandler:
    """Creating the same ledger twice returns it; a different one under a taken id is an error."""

    def __init__(
        self, uow: UnitOfWork, ledgers: LedgerRepository, events: EventOutbox, clock: Clock
    ) -> None:
        self._uow, self._ledgers, self._events, self._clock = uow, ledgers, events, clock

    async def __call__(self, command: CreateLedger) -> Ledger:
        check_id(command.ledger_id, "ledger_id")
        check_text(command.name, "name", max_length=MAX_NAME_LENGTH)
        metadata = check_metadata(command.metadata)
        return await retry_on_conflict(lambda: self._create(command, metadata))

    async def _create(self, command: CreateLedger, metadata: Metadata) -> Ledger:
        async with self._uow.begin() as tx:
            existing = await self._ledgers.get(command.ledger_id)
            if existing is not None:
                if (existing.name, dict(existing.metadata)) == (command.name, dict(metadata)):
                    return existing
                raise LedgerdError(
                    LedgerErrorCode.LEDGER_ALREADY_EXISTS,
                    f"ledger {command.ledger_id} already exists with other attributes",
                    {"ledger": command.ledger_id},
                )
            ledger = Ledger(command.ledger_id, command.name, metadata, self._clock.now())
            await self._ledgers.add(ledger)
            await self._events.record([LedgerCreated(ledger)])
            await tx.commit()
            return ledger
