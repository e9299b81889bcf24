"""Read-side use cases: each opens a read-only unit of work and returns domain values."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import datetime

from ledgerd.kernel.errors import LedgerdError, validation_error
from ledgerd.kernel.ids import check_id, check_id_shape
from ledgerd.kernel.metadata import EMPTY_METADATA, Metadata, check_metadata
from ledgerd.kernel.paging import (
    MAX_PAGE_SIZE,
    Page,
    check_page_size,
    decode_cursor,
    decode_int_cursor,
)
from ledgerd.kernel.rules import IntegerRule
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.ledger.application._lookups import (
    account_not_found,
    require_account,
    require_ledger,
)
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.model import (
    Account,
    Balances,
    Entry,
    Ledger,
    Transfer,
    TransferKind,
    TransferStatus,
)
from ledgerd.ledger.domain.repositories import (
    AccountRepository,
    JournalRepository,
    LedgerRepository,
    TransferRepository,
)
from ledgerd.ledger.domain.requests import check_key

# ExportStatement's after_sequence: 0 (the start) or an account sequence, a 64-bit column.
AFTER_SEQUENCE_RULE = IntegerRule(0, 2**63 - 1)
# BatchGetBalances answers at most this many accounts in one call.
MAX_BALANCES_PER_BATCH = 100


@dataclass(frozen=True, slots=True)
class AccountBalance:
    """An account's balances at an instant (now, or ``as_of``), with what is available."""

    account: Account
    balances: Balances
    available: int
    as_of: datetime | None


def _check_as_of(as_of: datetime | None) -> None:
    if as_of is not None and as_of.tzinfo is None:
        raise validation_error("as_of", "must carry a time zone")


class LedgerQueries:
    """The ledger context's reads. They share ports, so they share one small class."""

    def __init__(
        self,
        uow: UnitOfWork,
        ledgers: LedgerRepository,
        accounts: AccountRepository,
        transfers: TransferRepository,
        journal: JournalRepository,
    ) -> None:
        self._uow = uow
        self._ledgers = ledgers
        self._accounts = accounts
        self._transfers = transfers
        self._journal = journal

    async def get_ledger(self, ledger_id: str) -> Ledger:
        check_id(ledger_id, "ledger_id")
        async with self._uow.begin(read_only=True):
            return await require_ledger(self._ledgers, ledger_id)

    async def list_ledgers(
        self, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[Ledger]:
        size = check_page_size(limit)
        after = decode_cursor(cursor)
        if after is not None:
            # The ledger the last page ended on: stored, so it may predate check_id's rules.
            check_id_shape(after, "cursor")
        async with self._uow.begin(read_only=True):
            return await self._ledgers.list_page(after=after, limit=size)

    async def get_account(self, ledger_id: str, account_id: str) -> Account:
        check_id(ledger_id, "ledger_id")
        check_id(account_id, "account_id")
        async with self._uow.begin(read_only=True):
            return await require_account(self._ledgers, self._accounts, ledger_id, account_id)

    async def get_balance(
        self, ledger_id: str, account_id: str, as_of: datetime | None = None
    ) -> AccountBalance:
        check_id(ledger_id, "ledger_id")
        check_id(account_id, "account_id")
        _check_as_of(as_of)
        async with self._uow.begin(read_only=True):
            account = await require_account(self._ledgers, self._accounts, ledger_id, account_id)
            return await self._balance_of(account, as_of)

    async def get_balances(
        self, ledger_id: str, account_ids: Sequence[str], as_of: datetime | None = None
    ) -> list[AccountBalance]:
        """One balance per id, in order (an id asked twice is answered twice); all or none."""
        check_id(ledger_id, "ledger_id")
        if not account_ids:
            raise validation_error("accounts", "needs at least one account id")
        if len(account_ids) > MAX_BALANCES_PER_BATCH:
            raise validation_error(
                "accounts", f"may name at most {MAX_BALANCES_PER_BATCH} accounts"
            )
        for index, account_id in enumerate(account_ids):
            check_id(account_id, f"accounts[{index}]")
        _check_as_of(as_of)
        async with self._uow.begin(read_only=True):
            found = await self._accounts.get_many(ledger_id, set(account_ids))
            missing = next((one for one in account_ids if one not in found), None)
            if missing is not None:
                await require_ledger(self._ledgers, ledger_id)
                raise account_not_found(missing)
            balances = {
                account_id: await self._balance_of(account, as_of)
                for account_id, account in found.items()
            }
        return [balances[account_id] for account_id in account_ids]

    async def _balance_of(self, account: Account, as_of: datetime | None) -> AccountBalance:
        """``account``'s balances now (as loaded), or from the journal as they were at ``as_of``."""
        if as_of is None:
            balances = account.balances
        else:
            balances = await self._journal.balances_as_of(account.ledger_id, account.id, as_of)
        return AccountBalance(account, balances, balances.available(account.normal_side), as_of)

    async def list_accounts(
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

    async def get_transfer(self, ledger_id: str, transfer_id: str) -> Transfer:
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

    async def get_transfer_by_key(self, ledger_id: str, key: str) -> Transfer:
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

    async def list_transfers(  # noqa: PLR0913 - the filters of a transfer listing
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
        _check_window(start, end)
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

    async def export_entries(
        self, ledger_id: str, account_id: str, *, after_sequence: int = 0
    ) -> AsyncGenerator[Entry, None]:
        """Every entry of an account after ``after_sequence`` up to now, in order, a page at a time.

        Entries never change, so paging up to the count seen at the start is a consistent
        snapshot without holding one transaction open for the whole export. A cut export
        resumes with ``after_sequence``, the last entry's account sequence it received: the two
        parts are then the whole statement, with nothing missed or repeated.
        """
        _check_after_sequence(after_sequence)
        account = await self.get_account(ledger_id, account_id)
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

    async def list_entries(  # noqa: PLR0913 - the filters of a statement
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
        _check_window(start, end)
        size = check_page_size(limit)
        after = decode_int_cursor(cursor)
        async with self._uow.begin(read_only=True):
            await require_account(self._ledgers, self._accounts, ledger_id, account_id)
            return await self._journal.page(
                ledger_id, account_id, after=after, limit=size, start=start, end=end
            )


def _check_window(start: datetime | None, end: datetime | None) -> None:
    """A listing's ``[start_time, end_time)``: instants with a time zone, running forwards."""
    for name, bound in (("start_time", start), ("end_time", end)):
        if bound is not None and bound.tzinfo is None:
            raise validation_error(name, "must carry a time zone")
    if start is not None and end is not None and start > end:
        # An empty page would look like "nothing in that window" to a client that swapped
        # the two; the window [start_time, end_time) must run forwards (or be empty).
        raise validation_error("end_time", "must not be before start_time")


def _check_after_sequence(after_sequence: int) -> None:
    # Negative is a client's bug, not "from the start": 0 already says that. (Past the last
    # entry is not: the export is then empty, as a resumed one that had got everything.)
    if after_sequence < AFTER_SEQUENCE_RULE.minimum:
        raise validation_error("after_sequence", "must not be negative (0: from the first entry)")
