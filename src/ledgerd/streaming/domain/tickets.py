"""Stream tickets: single-use stand-ins for an access token, for one ledger's event stream.

A browser's EventSource and WebSocket cannot send an ``Authorization`` header. A page holding an
access token therefore asks for a ticket (an authenticated call) and opens the stream with
``?ticket=``. The ticket is random, valid for ``TICKET_LIFETIME``, opens one stream once, and
runs it as the principal that asked for it, on the one ledger it names, until that principal's
access token expires. Only its digest is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from ledgerd.kernel.principal import Principal

# Long enough for a page to open its stream after asking, short enough that a ticket leaked
# (in a proxy's log of URLs) is worthless by the time anyone reads it.
TICKET_LIFETIME: Final = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class StreamTicket:
    """A ticket as stored: its digest, the ledger it opens, for whom, until when."""

    digest: str
    ledger: str
    subject: str
    scopes: frozenset[str]
    # The access token's expiry: the stream it opens ends then. None: credentials that do not
    # expire (a client certificate).
    token_expires_at: datetime | None
    expires_at: datetime

    def principal(self) -> Principal:
        """Who the stream runs as: the asker, granted the ticket's one ledger."""
        return Principal(
            subject=self.subject,
            scopes=self.scopes,
            ledgers=frozenset((self.ledger,)),
            expires_at=self.token_expires_at,
        )


class StreamTicketRepository(Protocol):
    async def add(self, ticket: StreamTicket) -> None: ...

    async def take(self, digest: str) -> StreamTicket | None:
        """Remove the ticket of ``digest`` and return it (None: none, or taken already).

        Atomic: of two takers of one ticket, in any processes, one gets it.
        """
        ...

    async def forget_expired(self, now: datetime) -> int:
        """Remove the tickets expired at ``now`` (never presented); how many."""
        ...
