"""pipeline: stages in order, backpressure to the source, and every item accounted for."""

import asyncio
import random
from collections import Counter

import pytest

from ledgerd.platform.concurrency import Channel, Stage, pipeline
from tests.unit.platform.concurrency.support import settle


async def parse(text: str) -> int:
    await asyncio.sleep(0)
    return int(text)


async def square(number: int) -> int:
    await asyncio.sleep(0)
    return number * number


async def label(number: int) -> str:
    return f"#{number}"


async def source_of(items: list[str], *, close: bool = True) -> Channel[str]:
    channel = Channel[str](max(1, len(items)))
    for item in items:
        await channel.send(item)
    if close:
        channel.close()
    return channel


async def test_items_go_through_every_stage_in_order() -> None:
    source = await source_of([str(n) for n in range(10)])
    async with pipeline(source, Stage(parse), Stage(square), Stage(label)) as results:
        out = [item async for item in results]
    assert out == [f"#{n * n}" for n in range(10)]  # one worker per stage: order kept


async def test_several_workers_per_stage_process_everything() -> None:
    source = await source_of([str(n) for n in range(50)])
    async with pipeline(
        source, Stage(parse, workers=4, capacity=4), Stage(square, workers=3)
    ) as results:
        out = [item async for item in results]
    assert sorted(out) == sorted(n * n for n in range(50))


async def test_a_consumer_that_does_not_read_holds_the_source_back() -> None:
    source = await source_of([str(n) for n in range(100)], close=False)
    async with pipeline(source, Stage(parse), Stage(square)) as results:
        await settle(50)
        # One item in each worker's hands and one in each channel after it: 4 taken, no more.
        assert len(source) == 96
        assert len(results.output) == 1
    assert results.output.closed


async def test_a_failing_stage_fails_the_pipeline_and_returns_the_item_it_failed_on() -> None:
    source = await source_of(["1", "2", "oops", "4"])
    seen: list[int] = []
    results = pipeline(source, Stage(parse), Stage(square))

    async def consume() -> None:
        async with results:
            async for item in results:
                seen.append(item)  # noqa: PERF401 - a comprehension would drop what came before the error

    with pytest.raises(ExceptionGroup) as raised:
        await consume()
    assert [type(error) for error in raised.value.exceptions] == [ValueError]
    assert source.drain() == ["oops", "4"]  # the failed item is back, ahead of the rest
    # "1" and "2" got through the first stage: each is delivered, waiting or abandoned.
    assert seen == [1, 4][: len(seen)]
    assert len(seen) + len(results.output.drain()) + len(results.abandoned) == 2


@pytest.mark.parametrize("seed", range(12))
async def test_stopping_at_any_moment_accounts_for_every_item_and_runs_no_stage_twice(
    seed: int,
) -> None:
    rng = random.Random(seed)  # noqa: S311 - a reproducible schedule, not a secret
    calls: Counter[tuple[str, int]] = Counter()

    def stage(name: str, workers: int) -> Stage[int, int]:
        async def step(item: int) -> int:
            calls[name, item] += 1
            await settle(rng.randint(0, 2))
            return item

        return Stage(step, workers=workers, capacity=rng.randint(1, 3))

    source = Channel[int](100)
    for item in range(40):
        await source.send(item)
    async with pipeline(
        source, stage("a", rng.randint(1, 3)), stage("b", rng.randint(1, 3)), stage("c", 1)
    ) as results:
        delivered = [await results.output.receive() for _ in range(rng.randint(0, 25))]
    everything = delivered + results.output.drain() + source.drain() + list(results.abandoned)
    assert Counter(everything) == Counter(range(40))  # delivered, waiting, returned or abandoned
    assert max(calls.values(), default=1) == 1


async def test_a_pipeline_needs_a_stage_and_stages_need_workers() -> None:
    with pytest.raises(ValueError, match="at least one stage"):
        pipeline(Channel[int](1))
    with pytest.raises(ValueError, match="workers"):
        Stage(square, workers=0)
