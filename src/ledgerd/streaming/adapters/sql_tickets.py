"""``StreamTicketRepository`` on ``streaming_tickets`` (SQLite and PostgreSQL).

Taking a ticket is one ``DELETE ... RETURNING``: on PostgreSQL a second taker's delete waits for
the first's commit and then finds no row, so a ticket opens one stream however many ``serve``
processes it is presented to at once. It takes part in the caller's unit of work.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert

from ledgerd.platform.db.unit_of_work import current_connection
from ledgerd.streaming.adapters.tables import tickets
from ledgerd.streaming.domain.tickets import StreamTicket


class SqlStreamTicketRepository:
    async def add(self, ticket: StreamTicket) -> None:
        await current_connection().execute(
            insert(tickets).values(
                digest=ticket.digest,
                ledger=ticket.ledger,
                subject=ticket.subject,
                scopes=sorted(ticket.scopes),
                token_expires_at=ticket.token_expires_at,
                expires_at=ticket.expires_at,
            )
        )

    async def take(self, digest: str) -> StreamTicket | None:
        taken = (
            await current_connection().execute(
                delete(tickets).where(tickets.c.digest == digest).returning(*tickets.c)
            )
        ).first()
        if taken is None:
            return None
        return StreamTicket(
            digest=taken.digest,
            ledger=taken.ledger,
            subject=taken.subject,
            scopes=frozenset(taken.scopes),
            token_expires_at=taken.token_expires_at,
            expires_at=taken.expires_at,
        )

    async def forget_expired(self, now: datetime) -> int:
        result = await current_connection().execute(
            delete(tickets).where(tickets.c.expires_at <= now)
        )
        return int(result.rowcount)
