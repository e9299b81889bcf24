"""Duplicate call suppression (Go's ``singleflight``): one execution per key at a time.

Callers of ``do(key, fn)`` that arrive while an execution for ``key`` is in flight do not start
another; they all get that execution's result, or its exception. It is what keeps a cache miss
on a hot key from becoming a stampede of identical database reads.

The execution runs in a task of its own, so that no single caller owns it:

* a caller that is cancelled (or whose deadline passes) just stops waiting; the execution goes
  on for the others;
* when the *last* caller stops waiting, nobody wants the result any more and the execution is
  cancelled; that caller returns only once it has finished, so no task outlives its callers.

The task copies the context of the caller that started it (as Go's ``fn`` closes over that
caller's ``ctx``): it sees that caller's ``current()`` context and kernel deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Call(Generic[V]):
    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Task[V]) -> None:
        self.task = task
        self.waiters = 0


async def _run(fn: Callable[[], Awaitable[V]]) -> V:
    return await fn()


class SingleFlight(Generic[K, V]):
    """``await flight.do(key, fn)``: ``fn()``'s outcome, shared with concurrent callers."""

    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls: dict[K, _Call[V]] = {}

    def in_flight(self, key: K) -> bool:
        call = self._calls.get(key)
        return call is not None and not call.task.done()

    def forget(self, key: K) -> None:
        """Let the next ``do(key, ...)`` start afresh; callers already waiting keep waiting."""
        self._calls.pop(key, None)

    async def do(self, key: K, fn: Callable[[], Awaitable[V]]) -> V:
        """Run ``fn()`` unless an execution for ``key`` is in flight; either way, its outcome."""
        call = self._calls.get(key)
        if call is None or call.task.done():
            call = _Call(asyncio.create_task(_run(fn), name=f"singleflight {key!r}"))
            self._calls[key] = call
            call.task.add_done_callback(lambda task: self._finished(key, call, task))
        call.waiters += 1
        try:
            # shield: cancelling this caller cancels its wait, not the shared execution.
            return await asyncio.shield(call.task)
        finally:
            call.waiters -= 1
            if call.waiters == 0 and not call.task.done():
                # The last one out: nobody wants the result any more.
                if self._calls.get(key) is call:
                    del self._calls[key]
                call.task.cancel()
                await asyncio.wait([call.task])

    def _finished(self, key: K, call: _Call[V], task: asyncio.Task[V]) -> None:
        if self._calls.get(key) is call:
            del self._calls[key]
        if not task.cancelled():
            # Mark the exception as retrieved: every waiter may have left before it came.
            task.exception()
