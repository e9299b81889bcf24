"""Fan-out and fan-in over channels, as scopes: leaving the block stops and joins the tasks.

``fan_out(source, n)`` spreads one channel's items over ``n`` output channels, each item to
exactly one output: to whichever output has room first (load balancing), or, given ``key``,
always to the same output for the same key (partitioning: per-key order kept, so that, say,
all postings for one account are applied by one worker in order).
``fan_in(*sources)`` merges channels into one, which ends when all of them have ended.

What they promise on stopping (leaving the block early, an error, cancellation): the forwarding
tasks are cancelled and joined before the block's exit returns; an item a task held in transit
goes back to the front of the channel it came from; items already in an output stay there (the
outputs are closed, not cleared, so they can still be drained). Nothing taken is ever dropped.

Like ``asyncio.TaskGroup`` (which they are built on), a failure inside cancels the block, and
errors - the block's own included - come out of ``async with`` as an ``ExceptionGroup``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from typing import TypeVar

from ledgerd.platform.concurrency.channel import Channel
from ledgerd.platform.concurrency.forwarding import Countdown, forward

T = TypeVar("T")


@asynccontextmanager
async def fan_out(
    source: Channel[T],
    n: int,
    *,
    capacity: int = 1,
    key: Callable[[T], Hashable] | None = None,
) -> AsyncIterator[list[Channel[T]]]:
    """``n`` channels of ``capacity`` that share out ``source``'s items until it ends.

    Without ``key``, one forwarding task per output takes the next item and waits for room in
    its output, so the item goes to whichever forwarder is free first and a slow consumer gets
    fewer items (it still holds up to ``capacity`` + 1: its channel's and its forwarder's).
    With ``key``, one task sends each item to output ``hash(key(item)) % n``; a full output
    then holds up the others (head-of-line blocking: the price of keeping per-key order), and
    an output closed by its consumer stops the whole fan-out. Outputs close when ``source``
    has ended and they have had everything. While it runs, the fan-out should be ``source``'s
    only receiver.
    """
    if n < 1:
        msg = f"n must be at least 1, got {n}"
        raise ValueError(msg)
    outputs = [Channel[T](capacity) for _ in range(n)]
    try:
        async with asyncio.TaskGroup() as group:
            if key is None:
                tasks = [
                    group.create_task(_feed_one(source, output), name=f"fan-out {index}")
                    for index, output in enumerate(outputs)
                ]
            else:
                tasks = [group.create_task(_partition(source, outputs, key), name="fan-out")]
            try:
                yield outputs
            finally:
                for task in tasks:
                    task.cancel()
    finally:
        for output in outputs:
            output.close()


async def _feed_one(source: Channel[T], output: Channel[T]) -> None:
    try:
        await forward(source, lambda _: output)
    finally:
        output.close()


async def _partition(
    source: Channel[T], outputs: list[Channel[T]], key: Callable[[T], Hashable]
) -> None:
    try:
        await forward(source, lambda item: outputs[hash(key(item)) % len(outputs)])
    finally:
        for output in outputs:
            output.close()


@asynccontextmanager
async def fan_in(*sources: Channel[T], capacity: int = 1) -> AsyncIterator[Channel[T]]:
    """One channel of ``capacity`` carrying the items of all ``sources``, closed after the last.

    Each source's items arrive in their order; across sources, in whatever order they come.
    """
    merged = Channel[T](capacity)
    finished = Countdown(len(sources), merged.close)
    if not sources:
        merged.close()
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(_merge_one(source, merged, finished), name=f"fan-in {index}")
                for index, source in enumerate(sources)
            ]
            try:
                yield merged
            finally:
                for task in tasks:
                    task.cancel()
    finally:
        merged.close()


async def _merge_one(source: Channel[T], merged: Channel[T], finished: Countdown) -> None:
    try:
        await forward(source, lambda _: merged)
    finally:
        finished.done()
