"""A ledger's event as a stream carries it, and what a subscriber asks to see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True, eq=False)
class StreamEvent:
    """One event of a ledger's log: its place (``sequence``, from 1 without gaps) and payload.

    ``data`` is the payload as the log holds it (``datacontenttype``); ``accounts`` are the
    accounts the event concerns (its account, or every account its transfer touched), read
    once when the event is loaded so that filters never decode a payload. One instance is
    shared by every subscription it is delivered to.
    """

    ledger: str
    sequence: int
    id: str
    # The CloudEvents ``source`` it was recorded with, for the transports that send it as one.
    source: str
    type: str
    subject: str
    time: datetime
    datacontenttype: str
    data: bytes
    accounts: frozenset[str]


@dataclass(frozen=True, slots=True)
class StreamFilter:
    """Which events a subscriber wants: empty sets mean every account, every type.

    An event matches if its type is one of ``types`` and it concerns at least one of
    ``accounts``.
    """

    accounts: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()

    def matches(self, event: StreamEvent) -> bool:
        if self.types and event.type not in self.types:
            return False
        return not self.accounts or not self.accounts.isdisjoint(event.accounts)
