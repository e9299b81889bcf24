"""What every transport does to watch a ledger: check the request, subscribe, end on expiry.

gRPC's WatchLedger, Server-Sent Events and WebSocket all go through here, so a filter or a
position is refused the same way everywhere, and every stream ends when its caller's
credentials expire.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Iterable
from datetime import datetime

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.errors import ErrorCode, LedgerdError, validation_error
from ledgerd.kernel.principal import current_principal
from ledgerd.ledger.published.events import MESSAGES
from ledgerd.streaming.application.hub import StreamHub, UnknownLedgerError
from ledgerd.streaming.application.subscription import Subscription
from ledgerd.streaming.domain.events import StreamEvent, StreamFilter

# Bounds on one filter: enough for a wallet app's accounts, small enough to index cheaply.
MAX_ACCOUNTS = 100
_ACCOUNT_ID_MAX = 128
KNOWN_TYPES = frozenset(MESSAGES)

# A transport that sends no heartbeats still wakes this often, to no effect.
_NO_HEARTBEAT_S = 3600.0

# The refusal of a ledger that does not exist, or that the caller may not see (the same).
NotFound = Callable[[str], Exception]


def stream_filter(accounts: Iterable[str], types: Iterable[str]) -> StreamFilter:
    """The filter ``accounts`` and ``types`` ask for, or VALIDATION_FAILED naming the field."""
    account_set = frozenset(accounts)
    if len(account_set) > MAX_ACCOUNTS:
        raise validation_error("accounts", f"at most {MAX_ACCOUNTS} accounts per stream")
    for account in account_set:
        if not account or len(account) > _ACCOUNT_ID_MAX:
            raise validation_error(
                "accounts", f"an account id is 1 to {_ACCOUNT_ID_MAX} characters"
            )
    type_set = frozenset(types)
    unknown = sorted(type_set - KNOWN_TYPES)
    if unknown:
        known = ", ".join(sorted(KNOWN_TYPES))
        raise validation_error("types", f"unknown event type {unknown[0]!r}; known: {known}")
    return StreamFilter(accounts=account_set, types=type_set)


async def subscribe(
    hub: StreamHub,
    ledger: str,
    wanted: StreamFilter,
    after: int | None,
    not_found: NotFound,
) -> Subscription:
    if not ledger:
        raise validation_error("ledger", "required")
    try:
        return await hub.subscribe(ledger, wanted, after)
    except UnknownLedgerError:
        raise not_found(ledger) from None


def credentials_expired(position: int) -> LedgerdError:
    return LedgerdError(
        ErrorCode.UNAUTHENTICATED,
        f"the access token expired during the stream; get a new one and resume after sequence"
        f" {position}",
        {"reason": "expired", "position": str(position)},
    )


async def until_credentials_expire(
    subscription: Subscription, clock: Clock, expires_at: datetime | None = None
) -> AsyncGenerator[StreamEvent]:
    """The subscription's events until the caller's credentials expire (then UNAUTHENTICATED).

    ``expires_at`` defaults to the current principal's (None: no authentication, or
    credentials that do not expire, and the stream runs until the client leaves). For a
    transport without heartbeats of its own (gRPC keeps its connections alive itself).
    """
    if expires_at is None:
        principal = current_principal()
        expires_at = None if principal is None else principal.expires_at
    events = events_or_idle(subscription, clock, _NO_HEARTBEAT_S, expires_at)
    async with contextlib.aclosing(events):
        async for event in events:
            if event is not None:
                yield event


async def events_or_idle(
    subscription: Subscription,
    clock: Clock,
    idle_s: float,
    expires_at: datetime | None,
) -> AsyncGenerator[StreamEvent | None]:
    """The subscription's events, and None after each ``idle_s`` without one (a heartbeat is due).

    Ends with UNAUTHENTICATED once ``expires_at`` passes (the credentials the stream runs on),
    and with StreamEndedError when the server ends the subscription.
    """
    sent = subscription.delivered  # the last event the client was given: where it resumes
    while True:
        wait_s = idle_s
        if expires_at is not None:
            remaining = (expires_at - clock.now()).total_seconds()
            if remaining <= 0:
                raise credentials_expired(sent)
            wait_s = min(wait_s, remaining)
        event = await subscription.next_within(wait_s)
        if event is None:
            yield None
            continue
        # An event that arrives as the credentials expire is not theirs to see any more.
        if expires_at is not None and clock.now() >= expires_at:
            raise credentials_expired(sent)
        sent = event.sequence
        yield event
