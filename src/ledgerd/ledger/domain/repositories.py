"""The persistence ports of the ledger context. Adapters implement them; use cases depend on them.

Every method runs inside the unit of work that is current for the calling task.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from ledgerd.kernel.paging import Page
from ledgerd.kernel.repository import Repository
from ledgerd.ledger.domain.events import LedgerEvent
from ledgerd.ledger.domain.model import (
    Account,
    Balances,
    Entry,
    Ledger,
    LedgerHead,
    Transfer,
    TransferKind,
    TransferStatus,
)

AccountKey = tuple[str, str]
"""(ledger id, account id): account ids are unique within their ledger."""

TransferKey = tuple[str, str]
"""(ledger id, transfer id)."""


class LedgerRepository(Repository[Ledger, str], Protocol):
    async def get_head(self, ledger_id: str, *, for_update: bool = False) -> LedgerHead | None:
        """The chain's tip; ``for_update`` locks it until the unit of work ends."""
        ...

    async def save_head(self, head: LedgerHead, *, previous: LedgerHead) -> None:
        """Advance the tip; raises ConcurrencyConflictError if it moved since ``previous``."""
        ...

    async def list_page(
        self, *, after: str | None, limit: int, among: Collection[str] | None = None
    ) -> Page[Ledger]:
        """Ledgers in id order, after the ledger ``after``; only those ``among`` if given."""
        ...


class AccountRepository(Repository[Account, AccountKey], Protocol):
    async def get_many(
        self, ledger_id: str, account_ids: Collection[str], *, for_update: bool = False
    ) -> dict[str, Account]:
        """Load the accounts that exist; ``for_update`` locks them in ascending id order."""
        ...

    async def update(self, account: Account, *, expected_version: int) -> None:
        """Store ``account`` as version ``expected_version + 1``.

        Raises ConcurrencyConflictError if the stored version is no longer ``expected_version``.
        """
        ...

    async def update_many(self, changes: Sequence[tuple[Account, int]]) -> None:
        """``update`` every ``(account, expected_version)`` at once.

        The round trips to the database do not grow with the number of changes. Raises
        ConcurrencyConflictError if any stored version differs from the expected one; the unit
        of work, which may hold some of the changes by then, must not be committed. Each
        account appears at most once (ValueError otherwise). No changes, no statement.
        """
        ...

    async def list_page(
        self,
        ledger_id: str,
        *,
        metadata: Mapping[str, str],
        after: str | None,
        limit: int,
    ) -> Page[Account]: ...


class TransferRepository(Repository[Transfer, TransferKey], Protocol):
    async def get_many(
        self, ledger_id: str, transfer_ids: Collection[str]
    ) -> dict[str, Transfer]: ...

    async def get_by_keys(self, ledger_id: str, keys: Collection[str]) -> dict[str, Transfer]:
        """Transfers by idempotency key, for the keys that have been used."""
        ...

    async def add_many(self, transfers: Sequence[Transfer]) -> None:
        """Insert ``transfers``; the round trips to the database do not grow with their number."""
        ...

    async def set_status(self, transfer: Transfer, status: TransferStatus) -> None:
        """Change the status of ``transfer``.

        Raises ConcurrencyConflictError if the stored status is no longer ``transfer.status``.
        """
        ...

    async def set_statuses(self, changes: Sequence[tuple[Transfer, TransferStatus]]) -> None:
        """``set_status`` every ``(transfer, status)`` at once.

        The round trips to the database do not grow with the number of changes. Raises
        ConcurrencyConflictError if any stored status is no longer the ``transfer``'s; the unit
        of work, which may hold some of the changes by then, must not be committed. Each
        transfer appears at most once (ValueError otherwise). No changes, no statement.
        """
        ...

    async def list_page(  # noqa: PLR0913 - the filters of a transfer listing
        self,
        ledger_id: str,
        *,
        account_id: str | None,
        start: datetime | None,
        end: datetime | None,
        after: int | None,
        limit: int,
        kind: TransferKind | None = None,
        status: TransferStatus | None = None,
    ) -> Page[Transfer]:
        """Transfers in sequence order, after sequence ``after``.

        Only those that moved ``account_id``, were created in ``[start, end)``, are of
        ``kind`` and are now in ``status``, for the filters that are given.
        """
        ...

    async def due_for_expiry(self, now: datetime, limit: int) -> list[Transfer]:
        """Pending transfers, across ledgers, whose timeout passed at or before ``now``."""
        ...

    def chain(self, ledger_id: str) -> AsyncIterator[Transfer]:
        """Every transfer of a ledger in sequence order, streamed."""
        ...


class EventOutbox(Protocol):
    """Where the use cases leave their events, in the unit of work that made the change."""

    async def record(self, events: Sequence[LedgerEvent]) -> None:
        """Append ``events`` to their ledgers' streams, in order, in the current unit of work.

        They are published only once it commits, and not at all if it rolls back.
        """
        ...


class JournalRepository(Protocol):
    """The append-only journal: there is deliberately no way to change or remove an entry."""

    async def append(self, entries: Sequence[Entry]) -> None:
        """Insert ``entries``; the round trips to the database do not grow with their number."""
        ...

    async def page(  # noqa: PLR0913 - the filters of a statement
        self,
        ledger_id: str,
        account_id: str,
        *,
        after: int | None,
        limit: int,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Page[Entry]:
        """An account's entries in order, after account sequence ``after``.

        Only those created in ``[start, end)``, for the bounds that are given.
        """
        ...

    async def balances_as_of(self, ledger_id: str, account_id: str, instant: datetime) -> Balances:
        """The account's balances right after its last entry at or before ``instant``."""
        ...

    def entries(self, ledger_id: str) -> AsyncIterator[Entry]:
        """Every entry of a ledger, by account and then account sequence, streamed."""
        ...
