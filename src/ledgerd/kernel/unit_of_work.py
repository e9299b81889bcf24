"""The unit-of-work port: one atomic transaction, rolled back unless committed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

from ledgerd.kernel.errors import ConcurrencyConflictError

T = TypeVar("T")

DEFAULT_ATTEMPTS = 8


class Transaction(Protocol):
    async def commit(self) -> None: ...


class UnitOfWork(Protocol):
    def begin(self, *, read_only: bool = False) -> AbstractAsyncContextManager[Transaction]:
        """Open a transaction, current for this task until the block ends.

        Leaving the block without ``commit()`` rolls everything back. Repositories used inside
        the block take part in it without being handed anything.
        """
        ...


async def retry_on_conflict(
    attempt: Callable[[], Awaitable[T]], *, attempts: int = DEFAULT_ATTEMPTS
) -> T:
    """Run ``attempt`` again each time a concurrent writer made it lose.

    Each try is a fresh transaction, so retrying never applies anything twice.
    """
    for remaining in range(attempts - 1, -1, -1):
        try:
            return await attempt()
        except ConcurrencyConflictError:
            if remaining == 0:
                raise
    msg = "attempts must be at least 1"
    raise ValueError(msg)
