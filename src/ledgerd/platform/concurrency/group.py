"""An error group with a concurrency limit: Go's ``errgroup`` with ``SetLimit``, on TaskGroup.

``asyncio.TaskGroup`` already is an error group: the first failure cancels the other tasks
and the block, and ``async with`` raises every failure together in an ``ExceptionGroup``
(the first one first). What Go's errgroup adds, and this class too, is a limit: ``go()``
waits while ``limit`` tasks of the group are running, so a loop that spawns work for a million
rows holds at most ``limit`` tasks at a time instead of a million - backpressure on the
spawner rather than an unbounded heap of tasks.

Call ``go()`` from the block, not from the group's own tasks: a task that waits for a slot
held by itself or its siblings can deadlock, as in Go.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self, TypeVar, TypeVarTuple

R = TypeVar("R")
Ts = TypeVarTuple("Ts")


class ErrorGroup:
    """``async with ErrorGroup(limit=8) as group: await group.go(fn, *args)``."""

    __slots__ = ("_group", "_limit", "_slots")

    def __init__(self, limit: int | None = None) -> None:
        """At most ``limit`` tasks of the group run at once; None: no limit."""
        if limit is not None and limit < 1:
            msg = f"limit must be at least 1, got {limit}"
            raise ValueError(msg)
        self._limit = limit
        self._slots = None if limit is None else asyncio.Semaphore(limit)
        self._group = asyncio.TaskGroup()

    @property
    def limit(self) -> int | None:
        return self._limit

    async def go(self, fn: Callable[[*Ts], Awaitable[R]], *args: *Ts) -> asyncio.Task[R]:
        """Start ``fn(*args)`` in the group, first waiting for a free slot under the limit.

        Taking a function rather than a coroutine means nothing is created while waiting, so a
        caller cancelled here leaves no never-awaited coroutine behind.
        """
        slots = self._slots
        if slots is None:
            return self._group.create_task(_call(fn, args))
        await slots.acquire()
        try:
            task = self._group.create_task(_call(fn, args))
        except BaseException:
            slots.release()
            raise
        task.add_done_callback(lambda _: slots.release())
        return task

    async def __aenter__(self) -> Self:
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._group.__aexit__(exc_type, exc, traceback)


async def _call(fn: Callable[[*Ts], Awaitable[R]], args: tuple[*Ts]) -> R:
    return await fn(*args)
