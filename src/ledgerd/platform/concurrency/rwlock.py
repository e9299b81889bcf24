"""A readers-writer lock (Go's ``sync.RWMutex``) for asyncio, fair to writers and readers.

Any number of readers, or one writer. Fairness, both ways:

* **Writers do not starve.** Once a writer waits, newly arriving readers queue behind it;
  the readers already inside finish, and the writer goes next.
* **Readers do not starve either.** When a writer releases the lock, all readers waiting at
  that moment go in together, before the next writer.

Writers are served in arrival order. Cancellation is safe at every point: a task cancelled
while waiting leaves the queue (and if it was a writer holding readers back, lets them in);
a task cancelled after the lock was handed to it, but before it ran, hands it back.

Not reentrant, and a reader cannot upgrade to a writer: either deadlocks, as in Go.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, suppress
from types import TracebackType


class _Held:
    """``async with``: acquire on entry, release on exit."""

    __slots__ = ("_acquire", "_release")

    def __init__(self, acquire: Callable[[], Awaitable[None]], release: Callable[[], None]) -> None:
        self._acquire = acquire
        self._release = release

    async def __aenter__(self) -> None:
        await self._acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._release()


def _live(waiters: deque[asyncio.Future[None]]) -> bool:
    """Whether anyone still waits (dropping waiters already cancelled from the front)."""
    while waiters and waiters[0].done():
        waiters.popleft()
    return bool(waiters)


class RWLock:
    """``async with lock.read():`` shares the lock; ``async with lock.write():`` owns it."""

    __slots__ = ("_readers", "_waiting_readers", "_waiting_writers", "_writing")

    def __init__(self) -> None:
        self._readers = 0
        self._writing = False
        self._waiting_readers: deque[asyncio.Future[None]] = deque()
        self._waiting_writers: deque[asyncio.Future[None]] = deque()

    @property
    def readers(self) -> int:
        """How many readers hold the lock."""
        return self._readers

    @property
    def writing(self) -> bool:
        """Whether a writer holds the lock."""
        return self._writing

    def read(self) -> AbstractAsyncContextManager[None]:
        """``async with lock.read():`` - share the lock for the block."""
        return _Held(self.acquire_read, self.release_read)

    def write(self) -> AbstractAsyncContextManager[None]:
        """``async with lock.write():`` - own the lock for the block."""
        return _Held(self.acquire_write, self.release_write)

    async def acquire_read(self) -> None:
        if not self._writing and not _live(self._waiting_writers):
            self._readers += 1
            return
        await self._wait(self._waiting_readers, self.release_read)

    def release_read(self) -> None:
        if self._readers <= 0:
            msg = "release_read() without a reader holding the lock"
            raise RuntimeError(msg)
        self._readers -= 1
        if self._readers == 0:
            self._wake(readers_first=False)

    async def acquire_write(self) -> None:
        free = not self._writing and self._readers == 0
        if free and not _live(self._waiting_writers) and not _live(self._waiting_readers):
            self._writing = True
            return
        await self._wait(self._waiting_writers, self.release_write)

    def release_write(self) -> None:
        if not self._writing:
            msg = "release_write() without a writer holding the lock"
            raise RuntimeError(msg)
        self._writing = False
        self._wake(readers_first=True)

    async def _wait(
        self, waiters: deque[asyncio.Future[None]], release: Callable[[], None]
    ) -> None:
        waiter = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                release()  # handed the lock but never ran: hand it back
            else:
                waiter.cancel()
                with suppress(ValueError):
                    waiters.remove(waiter)
                # A writer that stops waiting may have been what held readers back.
                self._wake(readers_first=False)
            raise

    def _wake(self, *, readers_first: bool) -> None:
        """Hand the lock to whoever is next; see the module docstring for the order."""
        if self._writing:
            return
        writers_waiting = _live(self._waiting_writers)
        if _live(self._waiting_readers) and (readers_first or not writers_waiting):
            while self._waiting_readers:
                waiter = self._waiting_readers.popleft()
                if not waiter.done():
                    self._readers += 1
                    waiter.set_result(None)
            return
        if writers_waiting and self._readers == 0:
            self._writing = True
            self._waiting_writers.popleft().set_result(None)
