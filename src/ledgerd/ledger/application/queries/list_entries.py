"""ListEntries: an account statement, a page at a time."""

from __future__ import annotations

from datetime import datetime

from ledgerd.kernel.ids import check_id
from ledgerd.kernel.paging import Page, check_page_size, decode_int_cursor
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.application._lookups import require_account
from ledgerd.ledger.application.queries._checks import check_window
from ledgerd.ledger.domain.model import Entry
from ledgerd.ledger.domain.repositories import (
    AccountRepository,
    JournalRepository,
    LedgerRepository,
)


class ListEntriesQuery:
    def __init__(
        self,
        uow: UnitOfWork,
        ledgers: LedgerRepository,
        accounts: AccountRepository,
        journal: JournalRepository,
    ) -> None:
        self._uow, self._ledgers, self._accounts, self._journal = uow, ledgers, accounts, journal

    async def __call__(  # noqa: PLR0913 - the filters of a statement
        self,
        ledger_id: str,
        account_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[Entry]:
        """An account statement: its journal entries in order, a page at a time.

        Only those created in ``[start, end)``, for the bounds that are given; the cursor is
        an account sequence either way, so pages of a window neither skip nor repeat.
        """
        check_id(ledger_id, "ledger_id")
        check_id(account_id, "account_id")
        check_window(start, end)
        size = check_page_size(limit)
        after = decode_int_cursor(cursor)
        async with self._uow.begin(read_only=True):
            await require_account(self._ledgers, self._accounts, ledger_id, account_id)
            return await self._journal.page(
                ledger_id, account_id, after=after, limit=size, start=start, end=end
            )
