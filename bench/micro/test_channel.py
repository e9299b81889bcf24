"""The batcher's queue: a Channel moving items from many senders to a batch receiver."""

from __future__ import annotations

import asyncio
import contextlib

from bench.micro.conftest import Allocations, Benchmark

from ledgerd.platform.concurrency import Channel, ChannelClosedError

ITEMS = 20_000


async def _through_channel(batch: int) -> int:
    channel: Channel[int] = Channel(1_000)
    received = 0

    async def produce() -> None:
        for item in range(ITEMS):
            await channel.send(item)
        channel.close()

    producer = asyncio.create_task(produce())
    with contextlib.suppress(ChannelClosedError):  # the end of the stream
        while True:
            received += len(await channel.receive_batch(batch, 0.0))
    await producer
    return received


def test_channel_throughput_single_items(benchmark: Benchmark, allocations: Allocations) -> None:
    allocations(lambda: asyncio.run(_through_channel(1)))
    assert benchmark(lambda: asyncio.run(_through_channel(1))) == ITEMS
    benchmark.extra_info["items"] = ITEMS


def test_channel_throughput_batches_of_256(benchmark: Benchmark, allocations: Allocations) -> None:
    allocations(lambda: asyncio.run(_through_channel(256)))
    assert benchmark(lambda: asyncio.run(_through_channel(256))) == ITEMS
    benchmark.extra_info["items"] = ITEMS
