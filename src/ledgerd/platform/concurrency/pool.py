"""A bounded worker pool: ``workers`` tasks running ``handler`` over submitted jobs.

The pool's intake is a ``Channel`` of ``queue_size`` jobs, so submitting is subject to
backpressure: ``submit`` waits while the queue is full, ``try_submit`` says False. At most
``workers + queue_size`` jobs are accepted and unfinished at any time.

How it ends:

* **Gracefully** - ``await pool.close()``, or leaving the ``async with`` block normally: no
  new jobs are accepted (``submit`` raises ``ChannelClosedError``), every accepted job is
  finished, then the workers end.
* **By cancellation** - ``pool.cancel()``, an exception leaving the block, or the block's task
  being cancelled (by a ``Context`` scope, say): running jobs are cancelled, queued ones are
  not started. None of them vanishes: after the block, ``pool.abandoned`` lists every
  accepted job that did not run to completion.
* **By a failing job** - as in ``asyncio.TaskGroup``, which the pool is built on: the failure
  cancels the rest (as above) and ``async with`` raises it in an ``ExceptionGroup``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Generic, Self, TypeVar

from ledgerd.platform.concurrency.channel import Channel

T = TypeVar("T")


class WorkerPool(Generic[T]):
    """``async with WorkerPool(handle, workers=4) as pool: await pool.submit(job)``."""

    __slots__ = ("_abandoned", "_completed", "_group", "_handler", "_jobs", "_tasks", "_workers")

    def __init__(
        self,
        handler: Callable[[T], Awaitable[None]],
        *,
        workers: int,
        queue_size: int | None = None,
    ) -> None:
        """``workers`` tasks run ``handler``; ``queue_size`` (default: ``workers``) jobs wait."""
        if workers < 1:
            msg = f"workers must be at least 1, got {workers}"
            raise ValueError(msg)
        self._handler = handler
        self._workers = workers
        self._jobs = Channel[T](workers if queue_size is None else queue_size)
        self._group = asyncio.TaskGroup()
        self._tasks: list[asyncio.Task[None]] = []
        self._abandoned: list[T] = []
        self._completed = 0

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def queued(self) -> int:
        """Jobs accepted and not yet started."""
        return len(self._jobs)

    @property
    def completed(self) -> int:
        """Jobs whose handler returned."""
        return self._completed

    @property
    def abandoned(self) -> Sequence[T]:
        """Accepted jobs that did not complete because the pool was cancelled (after the block).

        The jobs interrupted while running come first, then the ones never started, in order.
        """
        return tuple(self._abandoned)

    async def submit(self, job: T) -> None:
        """Queue ``job``, waiting for room; ``ChannelClosedError`` once the pool is closing."""
        await self._jobs.send(job)

    def try_submit(self, job: T) -> bool:
        """Queue ``job`` if there is room now (True), else False; never waits."""
        return self._jobs.try_send(job)

    async def close(self) -> None:
        """Accept no more jobs, and wait until the accepted ones are done and the workers gone."""
        self._jobs.close()
        if self._tasks:
            await asyncio.wait(self._tasks)

    def cancel(self) -> None:
        """Accept no more jobs, cancel the running ones, start no queued one."""
        self._jobs.close()
        for task in self._tasks:
            task.cancel()

    async def __aenter__(self) -> Self:
        await self._group.__aenter__()
        self._tasks = [
            self._group.create_task(self._work(), name=f"worker-pool worker {index}")
            for index in range(self._workers)
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self._jobs.close()  # graceful: the workers drain the queue, then end
        else:
            self.cancel()
        try:
            await self._group.__aexit__(exc_type, exc, traceback)
        finally:
            self._abandoned.extend(self._jobs.drain())

    async def _work(self) -> None:
        async for job in self._jobs:
            try:
                await self._handler(job)
            except asyncio.CancelledError:
                self._abandoned.append(job)
                raise
            except BaseException:
                # The TaskGroup is about to cancel everything: stop taking jobs right away.
                self._jobs.close()
                raise
            self._completed += 1
