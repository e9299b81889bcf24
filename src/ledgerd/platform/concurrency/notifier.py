"""A broadcast "something changed" signal with a version number: Go's ``sync.Cond``, reshaped.

``sync.Cond`` pairs a condition with a mutex so that checking the condition and starting to
wait are atomic. In asyncio nothing runs between two awaits, so checking and waiting within
one ``wait(predicate)`` call are already atomic; what can still be lost is a change that
happens while the waiter is *elsewhere* (processing the previous change, say). The version
number closes that gap: remember ``version`` when you look, and ``changed(since=that)``
returns at once if anything was notified in between.

No lock is needed for the counter either: it is a plain int that only changes between awaits.
(That is also why there is no "atomic counter" in this package: on one event loop every
read-modify-write without an await inside is atomic. Code that shares state with threads
needs ``threading.Lock``, not this.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress


class Notifier:
    """Wake every waiter on ``notify_all()``; each notification bumps ``version``."""

    __slots__ = ("_version", "_waiters")

    def __init__(self) -> None:
        self._version = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def version(self) -> int:
        """How many notifications there have been."""
        return self._version

    def notify_all(self) -> int:
        """Wake everyone waiting; returns the new version."""
        self._version += 1
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        return self._version

    async def changed(self, since: int) -> int:
        """Wait until ``version`` is past ``since`` (at once if it already is); the new version."""
        while self._version <= since:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                waiter.cancel()
                with suppress(ValueError):  # gone already if notify_all() came first
                    self._waiters.remove(waiter)
                raise
        return self._version

    async def wait(self, predicate: Callable[[], bool]) -> int:
        """Wait until ``predicate()`` holds, checking now and after each notification.

        Returns the version at which it held, for a later ``changed(since=...)``.
        """
        while not predicate():
            await self.changed(self._version)
        return self._version
