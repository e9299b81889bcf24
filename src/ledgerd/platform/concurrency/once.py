"""Run an async initializer once: Go's ``sync.Once``, except that a failure is not final.

Callers that arrive while the initializer runs wait for it and share its outcome: its value,
or its exception. After a failure the next caller runs it again; after a success it never runs
again. If the caller running it is cancelled, the attempt is abandoned and one of the waiters
(the first to resume) runs it anew, so a cancelled caller never fails the others.

The initializer runs in the task of the caller that started it, under that caller's context
and deadline, like Go's ``once.Do(f)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Attempt:
    __slots__ = ("error", "finished")

    def __init__(self) -> None:
        self.finished = asyncio.Event()
        self.error: Exception | None = None


class Once(Generic[T]):
    """``await once.do(init)``: the value of the one successful run of ``init``."""

    __slots__ = ("_attempt", "_result")

    def __init__(self) -> None:
        self._result: tuple[T] | None = None  # a tuple, so that a None value is a value
        self._attempt: _Attempt | None = None

    @property
    def done(self) -> bool:
        """Whether an initializer has succeeded."""
        return self._result is not None

    async def do(self, init: Callable[[], Awaitable[T]]) -> T:
        """The initialized value: run ``init`` if no run succeeded yet, or wait for the one running.

        Raises what the run it waited for (or made) raised.
        """
        while True:
            if self._result is not None:
                return self._result[0]
            attempt = self._attempt
            if attempt is None:
                return await self._run(init)
            await attempt.finished.wait()
            if attempt.error is not None:
                raise attempt.error
            # It succeeded (the loop returns its value) or was abandoned (the loop runs it).

    async def _run(self, init: Callable[[], Awaitable[T]]) -> T:
        attempt = self._attempt = _Attempt()
        try:
            value = await init()
        except Exception as error:
            attempt.error = error
            raise
        else:
            self._result = (value,)
            return value
        finally:
            # Also reached when cancelled: the attempt ends with neither value nor error, and
            # its waiters start another.
            self._attempt = None
            attempt.finished.set()
