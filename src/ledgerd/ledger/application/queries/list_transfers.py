"""ListTransfers: a ledger's (or an account's) transfers in sequence order, filtered."""

from __future__ import annotations

from datetime import datetime

from ledgerd.kernel.ids import check_id
from ledgerd.kernel.paging import Page, check_page_size, decode_int_cursor
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.application._lookups import require_account, require_ledger
from ledgerd.ledger.application.queries._checks import check_window
from ledgerd.ledger.domain.model import Transfer, TransferKind, TransferStatus
from ledgerd.ledger.domain.repositories import (
    AccountRepository,
    LedgerRepository,
    TransferRepository,
)


class ListTransfersQuery:
    def __init__(
        self,
        uow: UnitOfWork,
        ledgers: LedgerRepository,
        accounts: AccountRepository,
        transfers: TransferRepository,
    ) -> None:
        self._uow, self._ledgers, self._accounts = uow, ledgers, accounts
        self._transfers = transfers

    async def __call__(  # noqa: PLR0913 - the filters of a transfer listing
        self,
        ledger_id: str,
        *,
        account_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        kind: TransferKind | None = None,
        status: TransferStatus | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[Transfer]:
        """Transfers in sequence order, filtered by whichever of the filters are given.

        ``kind=PENDING, status=PENDING`` lists the holds still open.
        """
        check_id(ledger_id, "ledger_id")
        if account_id is not None:
            check_id(account_id, "account")
        check_window(start, end)
        size = check_page_size(limit)
        after = decode_int_cursor(cursor)
        async with self._uow.begin(read_only=True):
            if account_id is None:
                await require_ledger(self._ledgers, ledger_id)
            else:
                # An unknown account is an error, as for its statement, not an empty listing
                # a client could mistake for an account that never moved.
                await require_account(self._ledgers, self._accounts, ledger_id, account_id)
            return await self._transfers.list_page(
                ledger_id,
                account_id=account_id,
                start=start,
                end=end,
                kind=kind,
                status=status,
                after=after,
                limit=size,
            )
