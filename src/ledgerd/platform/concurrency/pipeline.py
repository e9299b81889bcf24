"""A pipeline of stages connected by bounded channels (Go's pipeline pattern), as a scope.

``pipeline(source, Stage(parse), Stage(post, workers=4))`` runs each stage's function over the
items of the stage before, with ``workers`` tasks per stage and a channel of ``capacity``
between stages, so a slow stage holds the ones before it back (backpressure all the way to
``source``) instead of letting work pile up. Iterate the pipeline to get the last stage's
results; it ends once ``source`` has ended and every item has gone through. With more than
one worker, a stage may reorder items.

What happens to items when it stops early (leaving the block before the end, an error,
cancellation): every item taken from ``source`` is, after the block, exactly one of

* delivered - received from the pipeline;
* in ``pipeline.output`` - closed, not cleared, so it can still be drained;
* back at the front of ``source`` - the first stage had not finished with it;
* in ``pipeline.abandoned`` - a later stage had it, in whatever form that stage's input takes.

No stage function is run twice for one item. As with ``asyncio.TaskGroup``, which runs the
stages, a failing stage cancels the block and ``async with`` raises an ``ExceptionGroup``; the
item it failed on is treated like an unfinished one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Self, TypeVar, overload

from ledgerd.platform.concurrency.channel import Channel, ChannelClosedError
from ledgerd.platform.concurrency.forwarding import Countdown

In = TypeVar("In")
Out = TypeVar("Out")
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")
E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class Stage(Generic[In, Out]):
    """One step: ``fn`` on each item, by ``workers`` tasks, into a channel of ``capacity``."""

    fn: Callable[[In], Awaitable[Out]]
    workers: int = 1
    capacity: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1 or self.capacity < 1:
            msg = f"workers and capacity must be at least 1, got {self.workers}, {self.capacity}"
            raise ValueError(msg)


class Pipeline(Generic[Out]):
    """The running stages; ``async with`` it (see ``pipeline``), then iterate it."""

    __slots__ = ("_abandoned", "_between", "_group", "_source", "_stages", "_tasks", "output")

    def __init__(self, source: Channel[Any], stages: Sequence[Stage[Any, Any]]) -> None:
        """Prefer ``pipeline(source, *stages)``, which types the result."""
        if not stages:
            msg = "a pipeline needs at least one stage"
            raise ValueError(msg)
        self._source = source
        self._stages = tuple(stages)
        self._between: list[Channel[Any]] = [Channel(stage.capacity) for stage in stages[:-1]]
        self.output: Channel[Out] = Channel(stages[-1].capacity)
        self._abandoned: list[object] = []
        self._group = asyncio.TaskGroup()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def abandoned(self) -> Sequence[object]:
        """Items a later stage held when the pipeline stopped early (filled on exit)."""
        return tuple(self._abandoned)

    def __aiter__(self) -> Channel[Out]:
        return self.output

    async def __aenter__(self) -> Self:
        await self._group.__aenter__()
        inputs = [self._source, *self._between]
        outputs = [*self._between, self.output]
        stages = zip(self._stages, inputs, outputs, strict=True)
        for number, (stage, source, target) in enumerate(stages):
            finished = Countdown(stage.workers, target.close)
            self._tasks.extend(
                self._group.create_task(
                    self._work(stage.fn, source, target, finished),
                    name=f"pipeline stage {number} worker {worker}",
                )
                for worker in range(stage.workers)
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for task in self._tasks:
            task.cancel()  # no-op for stages that ran to the end
        try:
            await self._group.__aexit__(exc_type, exc, traceback)
        finally:
            for channel in self._between:
                channel.close()
                self._abandoned.extend(channel.drain())
            self.output.close()

    async def _work(
        self,
        fn: Callable[[Any], Awaitable[Any]],
        source: Channel[Any],
        target: Channel[Any],
        finished: Countdown,
    ) -> None:
        try:
            async for item in source:
                try:
                    result = await fn(item)
                except BaseException:
                    source.push_front([item])  # unfinished: hand it back
                    raise
                try:
                    await target.send(result)
                except BaseException as error:
                    self._abandoned.append(result)  # finished, but cannot be un-run
                    if isinstance(error, ChannelClosedError):
                        return  # the consumer closed the output: stop quietly
                    raise
        finally:
            finished.done()


@overload
def pipeline(source: Channel[A], s1: Stage[A, B], /) -> Pipeline[B]: ...
@overload
def pipeline(source: Channel[A], s1: Stage[A, B], s2: Stage[B, C], /) -> Pipeline[C]: ...
@overload
def pipeline(
    source: Channel[A], s1: Stage[A, B], s2: Stage[B, C], s3: Stage[C, D], /
) -> Pipeline[D]: ...
@overload
def pipeline(
    source: Channel[A], s1: Stage[A, B], s2: Stage[B, C], s3: Stage[C, D], s4: Stage[D, E], /
) -> Pipeline[E]: ...
@overload
def pipeline(source: Channel[Any], /, *stages: Stage[Any, Any]) -> Pipeline[Any]: ...
def pipeline(source: Channel[Any], /, *stages: Stage[Any, Any]) -> Pipeline[Any]:
    """The stages over ``source``, to be run by ``async with``: see the module docstring."""
    return Pipeline(source, stages)
