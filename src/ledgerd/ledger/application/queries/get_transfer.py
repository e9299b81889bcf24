"""GetTransfer: one transfer of a ledger, by id."""

from __future__ import annotations

from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.ids import check_id
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.application._lookups import require_ledger
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.model import Transfer
from ledgerd.ledger.domain.repositories import LedgerRepository, TransferRepository


class GetTransferQuery:
    def __init__(
        self, uow: UnitOfWork, ledgers: LedgerRepository, transfers: TransferRepository
    ) -> None:
        self._uow, self._ledgers, self._transfers = uow, ledgers, transfers

    async def __call__(self, ledger_id: str, transfer_id: str) -> Transfer:
        check_id(ledger_id, "ledger_id")
        check_id(transfer_id, "transfer_id")
        async with self._uow.begin(read_only=True):
            transfer = await self._transfers.get((ledger_id, transfer_id))
            if transfer is None:
                await require_ledger(self._ledgers, ledger_id)
                raise LedgerdError(
                    LedgerErrorCode.TRANSFER_NOT_FOUND,
                    f"transfer {transfer_id} does not exist",
                    {"transfer": transfer_id},
                )
            return transfer
