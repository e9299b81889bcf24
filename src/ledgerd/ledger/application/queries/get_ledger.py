"""GetLedger: one ledger by id."""

from __future__ import annotations

from ledgerd.kernel.ids import check_id
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.application._lookups import require_ledger
from ledgerd.ledger.domain.model import Ledger
from ledgerd.ledger.domain.repositories import LedgerRepository


class GetLedgerQuery:
    def __init__(self, uow: UnitOfWork, ledgers: LedgerRepository) -> None:
        self._uow, self._ledgers = uow, ledgers

    async def __call__(self, ledger_id: str) -> Ledger:
        check_id(ledger_id, "ledger_id")
        async with self._uow.begin(read_only=True):
            return await require_ledger(self._ledgers, ledger_id)
