"""Request deadlines that travel with the work: from the transport, through use cases, to SQL.

An entry point opens ``deadline_scope(seconds)`` around a request. Everything the request does
sees the same instant through ``remaining()`` (a contextvar, so it follows the task and any
task it starts), the database turns it into a statement timeout, and when it passes the
request's task is cancelled at its next await and ends with ``DeadlineExceededError``.

The contextvar here is the one record of the deadline in force: the platform's cancellation
contexts (``ledgerd.platform.concurrency.Context``) read it when derived and set it through
``deadline_scope`` when their scope is entered; they keep no deadline of the running code
beside it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar

from ledgerd.kernel.errors import ErrorCode, LedgerdError

_deadline: ContextVar[float | None] = ContextVar("ledgerd_deadline", default=None)


class DeadlineExceededError(LedgerdError):
    def __init__(self) -> None:
        super().__init__(ErrorCode.DEADLINE_EXCEEDED, "the request's deadline passed")


def deadline_at() -> float | None:
    """The deadline in force, in ``time.monotonic()`` seconds, or None without one."""
    return _deadline.get()


def remaining() -> float | None:
    """Seconds left before the current deadline (never negative), or None without one."""
    deadline = _deadline.get()
    return None if deadline is None else max(0.0, deadline - time.monotonic())


@contextmanager
def deadline_known(seconds: float | None) -> Iterator[None]:
    """Let ``remaining()`` see a deadline ``seconds`` from now, without enforcing it.

    For work shared by several callers that must not be cut short once it has begun (a
    posting group writing): the database still bounds its waits by the deadline, but nothing
    is cancelled when it passes. ``None`` adds none; an enclosing earlier one still applies.
    """
    if seconds is None:
        yield
        return
    candidate = time.monotonic() + max(0.0, seconds)
    outer = _deadline.get()
    token = _deadline.set(candidate if outer is None else min(outer, candidate))
    try:
        yield
    finally:
        _deadline.reset(token)


@asynccontextmanager
async def deadline_scope(seconds: float | None) -> AsyncIterator[None]:
    """Run the block under a deadline ``seconds`` from now; an enclosing earlier one wins.

    ``None`` adds no deadline of its own (an enclosing one still applies).
    """
    if seconds is None:
        yield
        return
    candidate = time.monotonic() + max(0.0, seconds)
    outer = _deadline.get()
    deadline = candidate if outer is None else min(outer, candidate)
    token = _deadline.set(deadline)
    timer = asyncio.timeout(max(0.0, deadline - time.monotonic()))
    try:
        async with timer:
            yield
    except TimeoutError:
        if timer.expired():
            raise DeadlineExceededError from None
        raise  # a timeout of something inside, not ours
    finally:
        _deadline.reset(token)
