"""fan_out and fan_in: each item delivered once, order where promised, nothing lost on stopping."""

import asyncio
import random
from collections import Counter

import pytest

from ledgerd.platform.concurrency import Channel, fan_in, fan_out
from tests.unit.platform.concurrency.support import settle, until


async def filled(
    items: list[int], *, capacity: int | None = None, close: bool = True
) -> Channel[int]:
    channel = Channel[int](capacity or max(1, len(items)))
    for item in items:
        await channel.send(item)
    if close:
        channel.close()
    return channel


async def collect(channel: Channel[int], into: list[int]) -> None:
    async for item in channel:
        into.append(item)
        await asyncio.sleep(0)


async def test_fan_out_delivers_each_item_to_exactly_one_output_then_ends_them_all() -> None:
    source = await filled(list(range(100)))
    received: list[list[int]] = [[], [], []]
    async with fan_out(source, 3, capacity=2) as outputs, asyncio.TaskGroup() as group:
        for output, into in zip(outputs, received, strict=True):
            group.create_task(collect(output, into))
    everything = [item for part in received for item in part]
    assert sorted(everything) == list(range(100))
    assert all(part for part in received)  # the work was shared
    assert all(part == sorted(part) for part in received)  # each output keeps source order


async def test_fan_out_by_key_keeps_each_keys_items_together_and_in_order() -> None:
    items = [key * 100 + sequence for sequence in range(10) for key in range(6)]
    source = await filled(items)
    received: list[list[int]] = [[], [], []]
    partitioned = fan_out(source, 3, key=lambda item: item // 100)
    async with partitioned as outputs, asyncio.TaskGroup() as group:
        for output, into in zip(outputs, received, strict=True):
            group.create_task(collect(output, into))
    for part in received:
        for key in {item // 100 for item in part}:
            assert [item for item in part if item // 100 == key] == [
                key * 100 + sequence for sequence in range(10)
            ]
    assert sorted(item for part in received for item in part) == sorted(items)


async def test_a_slow_consumer_does_not_hold_up_the_others() -> None:
    source = await filled(list(range(20)))
    fast: list[int] = []
    async with fan_out(source, 2, capacity=1) as (stalled, moving):
        await collect(moving, fast)  # the other output is never read
        # It holds what its channel and its forwarder can: at most capacity + 1 items.
        assert len(stalled) == 1
    assert len(fast) >= 18
    # Leaving the block returned the stalled forwarder's item to the source; the one in its
    # output is still there, closed, to be drained.
    assert sorted(fast + stalled.drain() + source.drain()) == list(range(20))


async def test_an_output_closed_by_its_consumer_gets_no_more_and_its_share_goes_elsewhere() -> None:
    source = await filled(list(range(30)))
    kept: list[int] = []
    async with fan_out(source, 2, capacity=1) as (quitting, staying):
        quitting.close()
        await collect(staying, kept)
    assert sorted(kept + quitting.drain()) == list(range(30))


async def test_a_partitioned_fan_out_stops_when_an_output_is_closed() -> None:
    source = await filled(list(range(30)))
    kept: list[int] = []
    async with fan_out(source, 2, key=lambda item: item % 2) as (evens, odds):
        evens.close()  # an even item can no longer be delivered in order: stop everything
        await collect(odds, kept)  # ends, as the fan-out closes every output
    returned = source.drain()
    assert returned[0] == 0  # the even item that could not be delivered went back first
    assert sorted(kept + odds.drain() + returned) == list(range(30))


async def test_leaving_fan_out_early_loses_nothing_and_leaves_no_task() -> None:
    source = Channel[int](100)
    for item in range(50):
        await source.send(item)  # left open: the fan-out would run on forever
    async with fan_out(source, 3, capacity=2) as outputs:
        taken = [await outputs[0].receive() for _ in range(5)]
        await settle()
    assert all(output.closed for output in outputs)
    leftover = [item for output in outputs for item in output.drain()] + source.drain()
    assert Counter(taken + leftover) == Counter(range(50))


async def test_fan_out_needs_at_least_one_output() -> None:
    with pytest.raises(ValueError, match="n must"):
        async with fan_out(Channel[int](1), 0):
            pass


async def test_fan_in_merges_every_source_keeping_each_ones_order() -> None:
    sources = [await filled([number * 100 + i for i in range(20)]) for number in range(4)]
    merged_items: list[int] = []
    async with fan_in(*sources, capacity=3) as merged:
        await collect(merged, merged_items)
    assert sorted(merged_items) == sorted(n * 100 + i for n in range(4) for i in range(20))
    for number in range(4):
        part = [item for item in merged_items if item // 100 == number]
        assert part == sorted(part)


async def test_fan_in_ends_only_after_the_last_source_ends() -> None:
    first = await filled([1])
    second = Channel[int](1)
    async with fan_in(first, second) as merged:
        assert await merged.receive() == 1
        receiving = asyncio.create_task(merged.receive())
        await settle()
        assert not receiving.done()  # `second` is still open
        await second.send(2)
        assert await receiving == 2
        second.close()
        assert [item async for item in merged] == []


async def test_fan_in_of_nothing_is_an_ended_channel() -> None:
    nothing: tuple[Channel[int], ...] = ()
    async with fan_in(*nothing) as merged:
        assert [item async for item in merged] == []


@pytest.mark.parametrize("seed", range(10))
async def test_leaving_fan_in_at_any_moment_loses_nothing(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - a reproducible schedule, not a secret
    sources = [Channel[int](rng.randint(1, 3)) for _ in range(3)]
    sent: list[int] = []

    async def produce(channel: Channel[int], base: int) -> None:
        for item in range(base, base + 15):
            await channel.send(item)
            sent.append(item)

    producers = [
        asyncio.create_task(produce(channel, index * 100)) for index, channel in enumerate(sources)
    ]
    received: list[int] = []
    async with fan_in(*sources, capacity=rng.randint(1, 3)) as merged:
        for _ in range(rng.randint(0, 30)):
            received.append(await merged.receive())
            await settle(rng.randint(0, 2))
    await settle()
    for producer in producers:
        producer.cancel()
    await asyncio.gather(*producers, return_exceptions=True)
    leftover = merged.drain() + [item for channel in sources for item in channel.drain()]
    assert Counter(received + leftover) == Counter(sent)
    await until(lambda: all(producer.done() for producer in producers))
