"""ListAccounts: a ledger's accounts, in id order, optionally filtered by metadata."""

from __future__ import annotations

from ledgerd.kernel.ids import check_id, check_id_shape
from ledgerd.kernel.metadata import EMPTY_METADATA, Metadata, check_metadata
from ledgerd.kernel.paging import Page, check_page_size, decode_cursor
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.application._lookups import require_ledger
from ledgerd.ledger.domain.model import Account
from ledgerd.ledger.domain.repositories import AccountRepository, LedgerRepository


class ListAccountsQuery:
    def __init__(
        self, uow: UnitOfWork, ledgers: LedgerRepository, accounts: AccountRepository
    ) -> None:
        self._uow, self._ledgers, self._accounts = uow, ledgers, accounts

    async def __call__(
        self,
        ledger_id: str,
        *,
        metadata: Metadata = EMPTY_METADATA,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[Account]:
        check_id(ledger_id, "ledger_id")
        metadata = check_metadata(metadata, "metadata filter")
        size = check_page_size(limit)
        after = decode_cursor(cursor)
        if after is not None:
            # The account the last page ended on: stored, so it may predate check_id's rules.
            check_id_shape(after, "cursor")
        async with self._uow.begin(read_only=True):
            await require_ledger(self._ledgers, ledger_id)
            return await self._accounts.list_page(
                ledger_id, metadata=metadata, after=after, limit=size
            )
