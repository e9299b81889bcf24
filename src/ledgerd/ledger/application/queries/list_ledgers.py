"""ListLedgers: every ledger, in id order, a page at a time."""

from __future__ import annotations

from ledgerd.kernel.ids import check_id_shape
from ledgerd.kernel.paging import Page, check_page_size, decode_cursor
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
        async with self._uow.begin(read_only=True):
            return await self._ledgers.list_page(after=after, limit=size)
