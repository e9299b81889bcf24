"""What happened in a ledger, as the aggregates record it: one event per state change.

The posting session records a transfer event as it decides each transfer (so an event shows
the transfer as it was created, even if a later request of the same batch settles it); the
ledger and account use cases record theirs. The application hands them to the event outbox
in the same unit of work as the change, which is what makes them reliable: written if and
only if the change is committed, in the ledger's order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ledgerd.ledger.domain.model import Account, Entry, Ledger, Side, Transfer, TransferKind


@dataclass(frozen=True, slots=True)
class LedgerCreated:
    ledger: Ledger


@dataclass(frozen=True, slots=True)
class AccountCreated:
    account: Account


@dataclass(frozen=True, slots=True)
class AccountMetadataChanged:
    account: Account  # after the change: it carries all of its metadata


@dataclass(frozen=True, slots=True)
class AccountFrozen:
    account: Account


@dataclass(frozen=True, slots=True)
class AccountUnfrozen:
    account: Account


@dataclass(frozen=True, slots=True)
class AccountClosed:
    account: Account


@dataclass(frozen=True, slots=True)
class TransferPosted:
    transfer: Transfer
    entries: tuple[Entry, ...]
    normal_sides: Mapping[str, Side]  # of the accounts it moved: what "available" means


@dataclass(frozen=True, slots=True)
class PendingCreated:
    transfer: Transfer
    entries: tuple[Entry, ...]
    normal_sides: Mapping[str, Side]  # of the accounts it moved: what "available" means


@dataclass(frozen=True, slots=True)
class PendingCaptured:
    transfer: Transfer
    entries: tuple[Entry, ...]
    normal_sides: Mapping[str, Side]  # of the accounts it moved: what "available" means


@dataclass(frozen=True, slots=True)
class PendingVoided:
    transfer: Transfer
    entries: tuple[Entry, ...]
    normal_sides: Mapping[str, Side]  # of the accounts it moved: what "available" means


@dataclass(frozen=True, slots=True)
class PendingExpired:
    transfer: Transfer
    entries: tuple[Entry, ...]
    normal_sides: Mapping[str, Side]  # of the accounts it moved: what "available" means


@dataclass(frozen=True, slots=True)
class TransferReversed:
    transfer: Transfer
    entries: tuple[Entry, ...]
    normal_sides: Mapping[str, Side]  # of the accounts it moved: what "available" means


AccountEvent = (
    AccountCreated | AccountMetadataChanged | AccountFrozen | AccountUnfrozen | AccountClosed
)
TransferEvent = (
    TransferPosted
    | PendingCreated
    | PendingCaptured
    | PendingVoided
    | PendingExpired
    | TransferReversed
)
LedgerEvent = LedgerCreated | AccountEvent | TransferEvent

_BY_KIND: dict[TransferKind, type[TransferEvent]] = {
    TransferKind.POSTING: TransferPosted,
    TransferKind.PENDING: PendingCreated,
    TransferKind.CAPTURE: PendingCaptured,
    TransferKind.VOID: PendingVoided,
    TransferKind.EXPIRY: PendingExpired,
    TransferKind.REVERSAL: TransferReversed,
}


def transfer_event(
    transfer: Transfer, entries: tuple[Entry, ...], normal_sides: Mapping[str, Side]
) -> TransferEvent:
    """The event a transfer of this kind is: every kind of transfer has exactly one."""
    return _BY_KIND[transfer.kind](transfer, entries, normal_sides)


def ledger_of(event: LedgerEvent) -> str:
    """The ledger an event belongs to: the stream it is ordered in."""
    match event:
        case LedgerCreated(ledger=ledger):
            return ledger.id
        case (
            AccountCreated(account)
            | AccountMetadataChanged(account)
            | AccountFrozen(account)
            | AccountUnfrozen(account)
            | (AccountClosed(account))
        ):
            return account.ledger_id
        case _:
            return event.transfer.ledger_id
