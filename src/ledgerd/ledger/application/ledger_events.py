"""The port through which the ledger reads its own event stream back (for replay).

Replay must know what a consumer of the published events knows and nothing more, but the
application layer cannot read the published messages (``published`` sits above it). So it
declares here the facts it needs, one per event, and an adapter decodes the stream into them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from ledgerd.ledger.domain.model import Balances, Layer, Side


@dataclass(frozen=True, slots=True)
class LedgerOpened:
    """The ledger's creation: it names no account and moves no money."""

    sequence: int


@dataclass(frozen=True, slots=True)
class AccountOpened:
    """An account's creation: its four balances start at zero."""

    sequence: int
    account_id: str


@dataclass(frozen=True, slots=True)
class AccountChanged:
    """A status or metadata change: it moves no money, only names an account."""

    sequence: int
    account_id: str


@dataclass(frozen=True, slots=True)
class RecordedEntry:
    """One journal entry as a transfer event carries it, with the balances it says follow."""

    account_id: str
    side: Side
    layer: Layer
    amount: int
    balances_after: Balances


@dataclass(frozen=True, slots=True)
class TransferRecorded:
    """Any transfer event (posted, pending, captured, voided, expired, reversed)."""

    sequence: int
    transfer_id: str
    chain_position: int
    entries: tuple[RecordedEntry, ...]


@dataclass(frozen=True, slots=True)
class UnreadableEvent:
    """An event that is not one of the ledger's, or whose payload does not decode."""

    sequence: int
    reason: str


StreamedEvent: TypeAlias = (
    LedgerOpened | AccountOpened | AccountChanged | TransferRecorded | UnreadableEvent
)


class LedgerEvents(Protocol):
    def stream(self, ledger_id: str) -> AsyncIterator[StreamedEvent]:
        """Every event of the ledger's stream, in sequence order, each as one fact.

        A lost event is not papered over: the sequences then jump.
        """
        ...
