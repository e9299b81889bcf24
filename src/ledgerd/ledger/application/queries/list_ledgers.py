"""ListLedgers: the ledgers the caller may use (every one without authentication), in id order.

The caller's grant is the one its token carries; a ledger granted since (one it created) shows
once it holds a token issued after that.
"""

from __future__ import annotations

from ledgerd.kernel.ids import check_id_shape
from ledgerd.kernel.paging import Page, check_page_size, decode_cursor
from ledgerd.kernel.principal import ALL_LEDGERS, current_principal
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.domain.model import Ledger
from ledgerd.ledger.domain.repositories import LedgerRepository


class ListLedgersQuery:
    def __init__(self, uow: UnitOfWork, ledgers: LedgerRepository) -> None:
        self._uow, self._ledgers = uow, ledgers

    async def __call__(
        self, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[Ledger]:
        size = check_page_size(limit)
        after = decode_cursor(cursor)
        if after is not None:
            # The ledger the last page ended on: stored, so it may predate check_id's rules.
            check_id_shape(after, "cursor")
        principal = current_principal()
        among = None if principal is None or principal.ledgers is ALL_LEDGERS else principal.ledgers
        async with self._uow.begin(read_only=True):
            return await self._ledgers.list_page(after=after, limit=size, among=among)
