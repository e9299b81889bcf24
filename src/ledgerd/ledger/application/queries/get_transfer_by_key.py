"""GetTransferByKey: the transfer posted under an idempotency key."""

from __future__ import annotations

from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.ids import check_id
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.application._lookups import require_ledger
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.model import Transfer
from ledgerd.ledger.domain.repositories import LedgerRepository, TransferRepository
from ledgerd.ledger.domain.requests import check_key


class GetTransferByKeyQuery:
    def __init__(
        self, uow: UnitOfWork, ledgers: LedgerRepository, transfers: TransferRepository
    ) -> None:
        self._uow, self._ledgers, self._transfers = uow, ledgers, transfers

    async def __call__(self, ledger_id: str, key: str) -> Transfer:
        """The transfer posted under ``key``: how a client resolves an unknown outcome."""
        check_id(ledger_id, "ledger_id")
        check_key(key)
        async with self._uow.begin(read_only=True):
            found = await self._transfers.get_by_keys(ledger_id, {key})
            if key not in found:
                await require_ledger(self._ledgers, ledger_id)
                raise LedgerdError(
                    LedgerErrorCode.TRANSFER_NOT_FOUND,
                    f"no transfer has the idempotency key {key}",
                    {"idempotency_key": key},
                )
            return found[key]
