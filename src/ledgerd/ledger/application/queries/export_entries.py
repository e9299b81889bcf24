"""ExportStatement: every entry of an account up to now, streamed a page at a time."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from ledgerd.kernel.errors import validation_error
from ledgerd.kernel.paging import MAX_PAGE_SIZE
from ledgerd.kernel.rules import IntegerRule
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.application.queries.get_account import GetAccountQuery
from ledgerd.ledger.domain.model import Entry
from ledgerd.ledger.domain.repositories import JournalRepository

# ExportStatement's after_sequence: 0 (the start) or an account sequence, a 64-bit column.
AFTER_SEQUENCE_RULE = IntegerRule(0, 2**63 - 1)


class ExportEntriesQuery:
    """Reads the account with GetAccount, then the journal, one short transaction a page."""

    def __init__(
        self, uow: UnitOfWork, get_account: GetAccountQuery, journal: JournalRepository
    ) -> None:
        self._uow, self._get_account, self._journal = uow, get_account, journal

    async def __call__(
        self, ledger_id: str, account_id: str, *, after_sequence: int = 0
    ) -> AsyncGenerator[Entry, None]:
        """Every entry of an account after ``after_sequence`` up to now, in order, a page at a time.

        Entries never change, so paging up to the count seen at the start is a consistent
        snapshot without holding one transaction open for the whole export. A cut export
        resumes with ``after_sequence``, the last entry's account sequence it received: the two
        parts are then the whole statement, with nothing missed or repeated.
        """
        _check_after_sequence(after_sequence)
        account = await self._get_account(ledger_id, account_id)
        after = after_sequence
        while after < account.entry_count:
            async with self._uow.begin(read_only=True):
                page = await self._journal.page(
                    ledger_id, account_id, after=after, limit=MAX_PAGE_SIZE
                )
            for item in page.items:
                if item.account_sequence > account.entry_count:
                    return
                yield item
            if not page.items:
                return
            after = page.items[-1].account_sequence


def _check_after_sequence(after_sequence: int) -> None:
    # Negative is a client's bug, not "from the start": 0 already says that. (Past the last
    # entry is not: the export is then empty, as a resumed one that had got everything.)
    if after_sequence < AFTER_SEQUENCE_RULE.minimum:
        raise validation_error("after_sequence", "must not be negative (0: from the first entry)")
