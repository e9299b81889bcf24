"""Issuing a stream ticket (CreateStreamTicket) and redeeming one (the stream's authentication)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.errors import validation_error
from ledgerd.kernel.principal import Principal
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.streaming.domain.tickets import (
    TICKET_LIFETIME,
    StreamTicket,
    StreamTicketRepository,
)

# A ticket as handed out is 43 characters of base64url; anything much longer is not one.
MAX_TICKET_LENGTH = 128


class TicketTokens(Protocol):
    """Random unguessable tokens and the digest they are stored by (``OpaqueTokens``)."""

    def new_token(self) -> str: ...

    def digest(self, token: str) -> str: ...


@dataclass(frozen=True, slots=True)
class IssuedTicket:
    ticket: str
    expires_at: datetime


class IssueStreamTicket:
    """A ticket for ``ledger``'s stream, as ``principal`` (the authenticated caller)."""

    def __init__(
        self, uow: UnitOfWork, tickets: StreamTicketRepository, tokens: TicketTokens, clock: Clock
    ) -> None:
        self._uow, self._tickets, self._tokens, self._clock = uow, tickets, tokens, clock

    async def __call__(self, principal: Principal | None, ledger: str) -> IssuedTicket:
        if not ledger:
            raise validation_error("ledger", "required")
        now = self._clock.now()
        token = self._tokens.new_token()
        ticket = StreamTicket(
            digest=self._tokens.digest(token),
            ledger=ledger,
            # Authentication off (no principal): a ticket standing for nobody, which such a
            # server never asks for, so that a page opens its streams the same way anywhere.
            subject="" if principal is None else principal.subject,
            scopes=frozenset() if principal is None else principal.scopes,
            token_expires_at=None if principal is None else principal.expires_at,
            expires_at=now + TICKET_LIFETIME,
        )
        async with self._uow.begin() as transaction:
            # Tickets never presented would pile up: each new one sweeps the expired away.
            await self._tickets.forget_expired(now)
            await self._tickets.add(ticket)
            await transaction.commit()
        return IssuedTicket(token, ticket.expires_at)


class RedeemStreamTicket:
    """The principal a ticket stands for, once; None for one unknown, used or expired.

    The pipeline's authentication asks (``SingleUseTickets``).
    """

    def __init__(
        self, uow: UnitOfWork, tickets: StreamTicketRepository, tokens: TicketTokens, clock: Clock
    ) -> None:
        self._uow, self._tickets, self._tokens, self._clock = uow, tickets, tokens, clock

    async def redeem(self, ticket: str) -> Principal | None:
        if not ticket or len(ticket) > MAX_TICKET_LENGTH:
            return None
        async with self._uow.begin() as transaction:
            taken = await self._tickets.take(self._tokens.digest(ticket))
            await transaction.commit()
        now = self._clock.now()
        if taken is None or taken.expires_at <= now:
            return None
        if taken.token_expires_at is not None and taken.token_expires_at <= now:
            return None  # its token expired meanwhile: the stream would end at once
        return taken.principal()
