"""In-memory fakes of the ledger's persistence ports, with a unit of work that rolls back.

``LedgerTables`` is the "database". ``FakeUnitOfWork.begin()`` snapshots it and puts the
snapshot back unless ``commit()`` was called, so rollback is observable. The repositories
find the transaction of the calling task the way the SQL ones do (a context variable), refuse
to run outside one, refuse writes in a read-only one, and enforce the schema's constraints:
unique keys raise ``ConcurrencyConflictError`` (what the SQL unit of work turns a unique
violation into); foreign keys, CHECKs and 64-bit overflow raise ``IntegrityViolationError``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime

from ledgerd.kernel.errors import ConcurrencyConflictError
from ledgerd.kernel.paging import Page, encode_cursor
from ledgerd.kernel.principal import Principal
from ledgerd.kernel.unit_of_work import Transaction, UnitOfWork
from ledgerd.ledger.application.ledger_events import (
    AccountChanged,
    AccountOpened,
    LedgerOpened,
    RecordedEntry,
    StreamedEvent,
    TransferRecorded,
)
from ledgerd.ledger.domain.events import (
    AccountClosed,
    AccountCreated,
    AccountFrozen,
    AccountMetadataChanged,
    AccountUnfrozen,
    LedgerCreated,
    LedgerEvent,
    ledger_of,
)
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
from ledgerd.ledger.domain.repositories import (
    AccountKey,
    AccountRepository,
    JournalRepository,
    LedgerRepository,
    TransferKey,
    TransferRepository,
)

_BIGINT_MIN = -(2**63)
_BIGINT_MAX = 2**63 - 1


class IntegrityViolationError(Exception):
    """A write a real database would refuse and no retry can fix (FK, CHECK, out of range)."""


@dataclass
class LedgerTables:
    """Every row of the fake database. Values are frozen dataclasses, so a copy is cheap."""

    ledgers: dict[str, Ledger] = field(default_factory=dict)
    heads: dict[str, LedgerHead] = field(default_factory=dict)
    accounts: dict[AccountKey, Account] = field(default_factory=dict)
    transfers: dict[TransferKey, Transfer] = field(default_factory=dict)
    # (ledger id, account id) -> account sequence -> entry
    entries: dict[AccountKey, dict[int, Entry]] = field(default_factory=dict)
    # ledger id -> its events, in order (the outbox's streams)
    events: dict[str, list[LedgerEvent]] = field(default_factory=dict)
    # (subject, ledger id): the ledgers granted to their creators, as identity would record them
    creator_grants: set[tuple[str, str]] = field(default_factory=set)

    def copy(self) -> LedgerTables:
        return LedgerTables(
            ledgers=dict(self.ledgers),
            heads=dict(self.heads),
            accounts=dict(self.accounts),
            transfers=dict(self.transfers),
            entries={key: dict(rows) for key, rows in self.entries.items()},
            events={ledger: list(events) for ledger, events in self.events.items()},
            creator_grants=set(self.creator_grants),
        )

    def restore(self, saved: LedgerTables) -> None:
        self.ledgers = saved.ledgers
        self.heads = saved.heads
        self.accounts = saved.accounts
        self.transfers = saved.transfers
        self.entries = saved.entries
        self.events = saved.events
        self.creator_grants = saved.creator_grants

    def account_entries(self, ledger_id: str, account_id: str) -> list[Entry]:
        rows = self.entries.get((ledger_id, account_id), {})
        return [rows[sequence] for sequence in sorted(rows)]


_current: ContextVar[FakeTransaction | None] = ContextVar("fake_ledger_tx", default=None)


class FakeTransaction:
    def __init__(self, uow: FakeUnitOfWork, *, read_only: bool) -> None:
        self.uow = uow
        self.read_only = read_only
        self.committed = False
        self.closed = False

    async def commit(self) -> None:
        if self.closed or self.committed:
            msg = "commit() on a transaction that is already over"
            raise RuntimeError(msg)
        if self.uow.conflicts_to_raise:
            self.uow.conflicts_to_raise -= 1
            msg = "injected conflict at commit"
            raise ConcurrencyConflictError(msg)
        self.committed = True
        self.uow.commits += 1


class FakeUnitOfWork:
    """Implements ``UnitOfWork``. Transactions run one at a time (like SQLite's write lock)."""

    def __init__(self, tables: LedgerTables | None = None) -> None:
        self.tables = LedgerTables() if tables is None else tables
        self.commits = 0
        self.rollbacks = 0
        self.transactions = 0
        # The next this-many commits fail with ConcurrencyConflictError, as if a rival won.
        self.conflicts_to_raise = 0
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def begin(self, *, read_only: bool = False) -> AsyncIterator[FakeTransaction]:
        if _current.get() is not None:
            msg = "a unit of work is already active in this task; units of work do not nest"
            raise RuntimeError(msg)
        async with self._lock:
            transaction = FakeTransaction(self, read_only=read_only)
            saved = self.tables.copy()
            token = _current.set(transaction)
            self.transactions += 1
            try:
                yield transaction
            finally:
                _current.reset(token)
                transaction.closed = True
                if not transaction.committed:
                    self.tables.restore(saved)
                    self.rollbacks += 1

    def _transaction(self, *, write: bool) -> FakeTransaction:
        transaction = _current.get()
        if transaction is None or transaction.uow is not self:
            msg = "no unit of work is active: wrap repository calls in `async with uow.begin()`"
            raise RuntimeError(msg)
        if write and transaction.read_only:
            msg = "write in a read-only unit of work"
            raise RuntimeError(msg)
        if write and transaction.committed:
            msg = "write after commit()"
            raise RuntimeError(msg)
        return transaction

    def reading(self) -> LedgerTables:
        self._transaction(write=False)
        return self.tables

    def writing(self) -> LedgerTables:
        self._transaction(write=True)
        return self.tables


# -- column checks a database would make ------------------------------------------------------


def _bigint(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{what}: {value!r} is not an integer"
        raise IntegrityViolationError(msg)
    if not _BIGINT_MIN <= value <= _BIGINT_MAX:
        msg = f"{what}: {value} does not fit a signed 64-bit column"
        raise IntegrityViolationError(msg)


def _balances(balances: Balances, what: str) -> None:
    for name in ("posted_debits", "posted_credits", "pending_debits", "pending_credits"):
        value = getattr(balances, name)
        _bigint(value, f"{what}.{name}")
        if value < 0:
            msg = f"{what}.{name} = {value} violates balances_not_negative"
            raise IntegrityViolationError(msg)


def _instant(value: datetime | None, what: str) -> None:
    if value is not None and value.tzinfo is None:
        msg = f"{what}: naive datetimes are ambiguous; pass a timezone-aware instant"
        raise ValueError(msg)


def _unique(what: str) -> ConcurrencyConflictError:
    return ConcurrencyConflictError(f"unique violation: {what}")


def _once_each(keys: Iterable[tuple[str, str]]) -> None:
    """A batch update names each row once; twice is the caller's bug, as in the SQL adapter."""
    seen: set[tuple[str, str]] = set()
    for key in keys:
        if key in seen:
            msg = f"{key} appears twice in one batch update"
            raise ValueError(msg)
        seen.add(key)


# -- repositories -----------------------------------------------------------------------------


class FakeLedgerRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def get(self, key: str) -> Ledger | None:
        return self._uow.reading().ledgers.get(key)

    async def add(self, item: Ledger) -> None:
        tables = self._uow.writing()
        _instant(item.created_at, "ledgers.created_at")
        if item.id in tables.ledgers:
            raise _unique(f"ledger {item.id}")
        tables.ledgers[item.id] = item
        tables.heads[item.id] = LedgerHead(item.id)

    async def get_head(self, ledger_id: str, *, for_update: bool = False) -> LedgerHead | None:
        del for_update  # transactions already run one at a time
        return self._uow.reading().heads.get(ledger_id)

    async def save_head(self, head: LedgerHead, *, previous: LedgerHead) -> None:
        tables = self._uow.writing()
        if tables.heads.get(head.ledger_id) != previous:
            msg = f"ledger {head.ledger_id} moved past #{previous.sequence} concurrently"
            raise ConcurrencyConflictError(msg)
        _bigint(head.sequence, "ledgers.last_sequence")
        tables.heads[head.ledger_id] = head

    async def list_page(
        self, *, after: str | None, limit: int, among: Collection[str] | None = None
    ) -> Page[Ledger]:
        if limit < 1:
            msg = "limit must be positive"
            raise ValueError(msg)
        ledgers = self._uow.reading().ledgers
        matching = sorted(
            ledger_id
            for ledger_id in ledgers
            if (after is None or ledger_id > after) and (among is None or ledger_id in among)
        )
        items = [ledgers[ledger_id] for ledger_id in matching[:limit]]
        more = len(matching) > limit
        return Page(items, encode_cursor(items[-1].id) if more else None)


class FakeAccountRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def get(self, key: AccountKey) -> Account | None:
        return self._uow.reading().accounts.get(key)

    async def add(self, item: Account) -> None:
        tables = self._uow.writing()
        if item.ledger_id not in tables.ledgers:
            msg = f"accounts.ledger_id {item.ledger_id} references no ledger"
            raise IntegrityViolationError(msg)
        if (item.ledger_id, item.id) in tables.accounts:
            raise _unique(f"account {item.ledger_id}/{item.id}")
        _check_account(item)
        tables.accounts[item.ledger_id, item.id] = item

    async def get_many(
        self, ledger_id: str, account_ids: Collection[str], *, for_update: bool = False
    ) -> dict[str, Account]:
        del for_update
        tables = self._uow.reading()
        found: dict[str, Account] = {}
        for account_id in sorted(set(account_ids)):
            account = tables.accounts.get((ledger_id, account_id))
            if account is not None:
                found[account_id] = account
        return found

    async def update(self, account: Account, *, expected_version: int) -> None:
        await self.update_many([(account, expected_version)])

    async def update_many(self, changes: Sequence[tuple[Account, int]]) -> None:
        tables = self._uow.writing()
        _once_each((account.ledger_id, account.id) for account, _ in changes)
        updated: list[Account] = []
        # Every check before any write: a conflict leaves the tables untouched.
        for account, expected_version in changes:
            stored = tables.accounts.get((account.ledger_id, account.id))
            if stored is None or stored.version != expected_version:
                msg = f"account {account.id} changed since version {expected_version}"
                raise ConcurrencyConflictError(msg)
            # Like the SQL adapter: only the columns that change over an account's life.
            changed = dataclasses.replace(
                stored,
                status=account.status,
                metadata=account.metadata,
                balances=account.balances,
                entry_count=account.entry_count,
                version=expected_version + 1,
            )
            _check_account(changed)
            updated.append(changed)
        for account in updated:
            tables.accounts[account.ledger_id, account.id] = account

    async def list_page(
        self,
        ledger_id: str,
        *,
        metadata: Mapping[str, str],
        after: str | None,
        limit: int,
    ) -> Page[Account]:
        if limit < 1:
            msg = "limit must be positive"
            raise ValueError(msg)
        tables = self._uow.reading()
        matching = sorted(
            (
                account
                for (owner, account_id), account in tables.accounts.items()
                if owner == ledger_id
                and (after is None or account_id > after)
                and all(account.metadata.get(key) == value for key, value in metadata.items())
            ),
            key=lambda account: account.id,
        )
        items = matching[:limit]
        more = len(matching) > limit
        return Page(items, encode_cursor(items[-1].id) if more else None)


def _check_account(account: Account) -> None:
    _balances(account.balances, f"accounts[{account.id}]")
    _bigint(account.version, "accounts.version")
    _bigint(account.entry_count, "accounts.entry_count")
    _bigint(account.flags.overdraft_limit, "accounts.overdraft_limit")
    _instant(account.created_at, "accounts.created_at")


class FakeTransferRepository:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def get(self, key: TransferKey) -> Transfer | None:
        return self._uow.reading().transfers.get(key)

    async def add(self, item: Transfer) -> None:
        await self.add_many([item])

    async def get_many(self, ledger_id: str, transfer_ids: Collection[str]) -> dict[str, Transfer]:
        tables = self._uow.reading()
        found: dict[str, Transfer] = {}
        for transfer_id in sorted(set(transfer_ids)):
            transfer = tables.transfers.get((ledger_id, transfer_id))
            if transfer is not None:
                found[transfer_id] = transfer
        return found

    async def get_by_keys(self, ledger_id: str, keys: Collection[str]) -> dict[str, Transfer]:
        wanted = set(keys)
        return {
            transfer.idempotency_key: transfer
            for (owner, _), transfer in self._uow.reading().transfers.items()
            if owner == ledger_id and transfer.idempotency_key in wanted
        }

    async def add_many(self, transfers: Sequence[Transfer]) -> None:
        tables = self._uow.writing()
        for transfer in transfers:
            ledger_id = transfer.ledger_id
            if ledger_id not in tables.ledgers:
                msg = f"transfers.ledger_id {ledger_id} references no ledger"
                raise IntegrityViolationError(msg)
            if (ledger_id, transfer.id) in tables.transfers:
                raise _unique(f"transfer {ledger_id}/{transfer.id}")
            for other in tables.transfers.values():
                if other.ledger_id != ledger_id:
                    continue
                if other.sequence == transfer.sequence:
                    raise _unique(f"transfer sequence {ledger_id}#{transfer.sequence}")
                if other.idempotency_key == transfer.idempotency_key:
                    raise _unique(f"idempotency key {transfer.idempotency_key!r}")
                if transfer.target_id is not None and other.target_id == transfer.target_id:
                    raise _unique(f"a second transfer settling {transfer.target_id}")
            _bigint(transfer.sequence, "transfers.sequence")
            for leg in transfer.legs:
                _bigint(leg.amount, "transfers.legs.amount")
            _instant(transfer.created_at, "transfers.created_at")
            _instant(transfer.expires_at, "transfers.expires_at")
            tables.transfers[ledger_id, transfer.id] = transfer

    async def set_status(self, transfer: Transfer, status: TransferStatus) -> None:
        await self.set_statuses([(transfer, status)])

    async def set_statuses(self, changes: Sequence[tuple[Transfer, TransferStatus]]) -> None:
        tables = self._uow.writing()
        _once_each((transfer.ledger_id, transfer.id) for transfer, _ in changes)
        updated: list[Transfer] = []
        # Every check before any write: a conflict leaves the tables untouched.
        for transfer, status in changes:
            stored = tables.transfers.get((transfer.ledger_id, transfer.id))
            if stored is None or stored.status is not transfer.status:
                msg = f"transfer {transfer.id} is no longer {transfer.status}"
                raise ConcurrencyConflictError(msg)
            updated.append(dataclasses.replace(stored, status=status))
        for transfer in updated:
            tables.transfers[transfer.ledger_id, transfer.id] = transfer

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
        tables = self._uow.reading()
        moved = (
            None
            if account_id is None
            else {entry.transfer_id for entry in tables.account_entries(ledger_id, account_id)}
        )
        selected = sorted(
            (
                transfer
                for (ledger, _), transfer in tables.transfers.items()
                if ledger == ledger_id
                and (after is None or transfer.sequence > after)
                and (start is None or transfer.created_at >= start)
                and (end is None or transfer.created_at < end)
                and (moved is None or transfer.id in moved)
                and (kind is None or transfer.kind is kind)
                and (status is None or transfer.status is status)
            ),
            key=lambda transfer: transfer.sequence,
        )
        items = selected[:limit]
        more = len(selected) > limit
        return Page(items, encode_cursor(items[-1].sequence) if more else None)

    async def due_for_expiry(self, now: datetime, limit: int) -> list[Transfer]:
        _instant(now, "now")
        due = [
            transfer
            for transfer in self._uow.reading().transfers.values()
            if transfer.status is TransferStatus.PENDING
            and transfer.expires_at is not None
            and transfer.expires_at <= now
        ]
        due.sort(key=lambda t: (t.expires_at, t.ledger_id, t.sequence))
        return due[:limit]

    async def chain(self, ledger_id: str) -> AsyncIterator[Transfer]:
        tables = self._uow.reading()
        ordered = sorted(
            (transfer for (owner, _), transfer in tables.transfers.items() if owner == ledger_id),
            key=lambda transfer: transfer.sequence,
        )
        for transfer in ordered:
            yield transfer


class FakeJournalRepository:
    """Append and read only, like the port: there is no way to change an entry."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def append(self, entries: Sequence[Entry]) -> None:
        tables = self._uow.writing()
        for entry in entries:
            key = (entry.ledger_id, entry.account_id)
            if key not in tables.accounts:
                msg = f"entries.account_id {entry.account_id} references no account"
                raise IntegrityViolationError(msg)
            if (entry.ledger_id, entry.transfer_id) not in tables.transfers:
                msg = f"entries.transfer_id {entry.transfer_id} references no transfer"
                raise IntegrityViolationError(msg)
            rows = tables.entries.setdefault(key, {})
            if entry.account_sequence in rows:
                raise _unique(f"entry {entry.account_id}#{entry.account_sequence}")
            _bigint(entry.amount, "entries.amount")
            _bigint(entry.account_sequence, "entries.account_sequence")
            _balances(entry.balances_after, f"entries[{entry.account_id}].after")
            _instant(entry.created_at, "entries.created_at")
            rows[entry.account_sequence] = entry

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
        if limit < 1:
            msg = "limit must be positive"
            raise ValueError(msg)
        _instant(start, "start")
        _instant(end, "end")
        entries = self._uow.reading().account_entries(ledger_id, account_id)
        matching = [
            e
            for e in entries
            if (after is None or e.account_sequence > after)
            and (start is None or e.created_at >= start)
            and (end is None or e.created_at < end)
        ]
        items = matching[:limit]
        more = len(matching) > limit
        return Page(items, encode_cursor(items[-1].account_sequence) if more else None)

    async def balances_as_of(self, ledger_id: str, account_id: str, instant: datetime) -> Balances:
        _instant(instant, "instant")
        entries = self._uow.reading().account_entries(ledger_id, account_id)
        at_or_before = [entry for entry in entries if entry.created_at <= instant]
        return at_or_before[-1].balances_after if at_or_before else Balances()

    async def entries(self, ledger_id: str) -> AsyncIterator[Entry]:
        tables = self._uow.reading()
        account_ids = sorted(account for owner, account in tables.entries if owner == ledger_id)
        for account_id in account_ids:
            for entry in tables.account_entries(ledger_id, account_id):
                yield entry


# mypy checks here, once, that every fake implements its port.
def _conformance(
    uow: FakeUnitOfWork,
) -> tuple[
    UnitOfWork,
    Transaction,
    LedgerRepository,
    AccountRepository,
    TransferRepository,
    JournalRepository,
]:
    return (
        uow,
        FakeTransaction(uow, read_only=True),
        FakeLedgerRepository(uow),
        FakeAccountRepository(uow),
        FakeTransferRepository(uow),
        FakeJournalRepository(uow),
    )


class FakeLedgerCreatorGrants:
    """Grants a ledger to its creator in the fake database, inside the transaction."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def grant(self, principal: Principal, ledger_id: str) -> None:
        self._uow.writing().creator_grants.add((principal.subject, ledger_id))


class FakeEventOutbox:
    """Implements ``EventOutbox``: events kept per ledger, with the transaction's other rows."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def record(self, events: Sequence[LedgerEvent]) -> None:
        tables = self._uow.writing()
        for event in events:
            tables.events.setdefault(ledger_of(event), []).append(event)


class FakeLedgerEvents:
    """Implements ``LedgerEvents``: the fake outbox's events as replay's facts, numbered from 1.

    The real adapter decodes the same facts from the published messages in the outbox; here
    they come straight from the domain events the use cases recorded.
    """

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def stream(self, ledger_id: str) -> AsyncIterator[StreamedEvent]:
        async with self._uow.begin(read_only=True):
            events = list(self._uow.reading().events.get(ledger_id, ()))
        for sequence, event in enumerate(events, start=1):
            yield _fact(sequence, event)


def _fact(sequence: int, event: LedgerEvent) -> StreamedEvent:
    match event:
        case LedgerCreated():
            return LedgerOpened(sequence)
        case AccountCreated(account=account):
            return AccountOpened(sequence, account.id)
        case (
            AccountMetadataChanged(account=account)
            | AccountFrozen(account=account)
            | AccountUnfrozen(account=account)
            | AccountClosed(account=account)
        ):
            return AccountChanged(sequence, account.id)
        case _:
            entries = tuple(
                RecordedEntry(e.account_id, e.side, e.layer, e.amount, e.balances_after)
                for e in event.entries
            )
            return TransferRecorded(sequence, event.transfer.id, event.transfer.sequence, entries)
