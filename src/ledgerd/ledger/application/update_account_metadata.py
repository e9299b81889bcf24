"""Change an account's metadata: set some keys, remove others, keep the rest."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from ledgerd.kernel.errors import ErrorCode, LedgerdError, validation_error
from ledgerd.kernel.ids import check_id
from ledgerd.kernel.metadata import (
    MAX_METADATA_ENTRIES,
    METADATA_KEY_PATTERN,
    Metadata,
    check_metadata,
)
from ledgerd.kernel.unit_of_work import UnitOfWork, retry_on_conflict
from ledgerd.ledger.application._lookups import account_not_found, require_ledger
from ledgerd.ledger.domain.events import AccountMetadataChanged
from ledgerd.ledger.domain.model import Account
from ledgerd.ledger.domain.repositories import AccountRepository, EventOutbox, LedgerRepository

# An account holds at most this many keys, so naming more to remove can only be a mistake.
MAX_REMOVE_KEYS = MAX_METADATA_ENTRIES
# Versions are stored as signed 64-bit integers.
MAX_VERSION = 2**63 - 1


@dataclass(frozen=True, slots=True)
class UpdateAccountMetadata:
    ledger_id: str
    account_id: str
    metadata: Metadata = field(default_factory=dict)  # keys to set (add or overwrite)
    remove_keys: Sequence[str] = ()
    expected_version: int | None = None  # None: whatever version the account is at


class UpdateAccountMetadataHandler:
    """Nothing to change, nothing written; otherwise one new version and one event."""

    def __init__(
        self,
        uow: UnitOfWork,
        ledgers: LedgerRepository,
        accounts: AccountRepository,
        events: EventOutbox,
    ) -> None:
        self._uow, self._ledgers, self._accounts, self._events = uow, ledgers, accounts, events

    async def __call__(self, command: UpdateAccountMetadata) -> Account:
        check_id(command.ledger_id, "ledger_id")
        check_id(command.account_id, "account_id")
        changes = check_metadata(command.metadata)
        removals = _check_removals(command.remove_keys, changes)
        expected = command.expected_version
        if expected is not None and not 0 <= expected <= MAX_VERSION:
            raise validation_error("expected_version", f"must be between 0 and {MAX_VERSION}")
        # A lost race (ConcurrencyConflictError) is retried: the next attempt reads the winner's
        # version, so a client's expected_version is then judged against what is stored.
        return await retry_on_conflict(lambda: self._update(command, changes, removals))

    async def _update(
        self, command: UpdateAccountMetadata, changes: Metadata, removals: frozenset[str]
    ) -> Account:
        async with self._uow.begin() as tx:
            found = await self._accounts.get_many(
                command.ledger_id, [command.account_id], for_update=True
            )
            account = found.get(command.account_id)
            if account is None:
                await require_ledger(self._ledgers, command.ledger_id)
                raise account_not_found(command.account_id)
            if command.expected_version not in (None, account.version):
                raise _version_mismatch(account, command.expected_version)
            changed = account.with_metadata_changed(changes, removals)
            if dict(changed.metadata) == dict(account.metadata):
                return account
            await self._accounts.update(changed, expected_version=account.version)
            stored = dataclasses.replace(changed, version=account.version + 1)
            await self._events.record([AccountMetadataChanged(stored)])
            await tx.commit()
            return stored


def _check_removals(keys: Sequence[str], changes: Metadata) -> frozenset[str]:
    if len(keys) > MAX_REMOVE_KEYS:
        raise validation_error("remove_keys", f"may name at most {MAX_REMOVE_KEYS} keys")
    for index, key in enumerate(keys):
        name = f"remove_keys[{index}]"
        if not METADATA_KEY_PATTERN.fullmatch(key):
            raise validation_error(name, f"must match {METADATA_KEY_PATTERN.pattern}")
        if key in changes:
            raise validation_error(name, f"the key {key} is also in metadata: set it or remove it")
    return frozenset(keys)


def _version_mismatch(account: Account, expected: int | None) -> LedgerdError:
    # A plain LedgerdError, not a ConcurrencyConflictError: retry_on_conflict must not retry
    # it, since every retry would read the same version. The client reads the account again.
    return LedgerdError(
        ErrorCode.CONCURRENCY_CONFLICT,
        f"account {account.id} is at version {account.version}, not the expected {expected}",
        {
            "account": account.id,
            "expected_version": str(expected),
            "actual_version": str(account.version),
        },
    )
