"""The fair queue: keys served in turn, runs bounded, leases, capacity, close and cancellation."""

import asyncio
import random
from collections import Counter

import pytest

from ledgerd.platform.concurrency import ChannelClosedError, FairQueue
from tests.unit.platform.concurrency.support import settle, until


async def _take_all(queue: FairQueue[str, int], max_items: int) -> list[tuple[str, list[int]]]:
    runs = []
    while len(queue):
        key, items, lease = await queue.take(max_items)
        lease.release()
        runs.append((key, items))
    return runs


async def test_a_big_backlog_on_one_key_does_not_hold_up_the_others() -> None:
    queue = FairQueue[str, int](1000)
    for n in range(100):
        assert queue.try_put("bulk", n)
    queue.try_put("small", 1000)
    queue.try_put("other", 2000)
    runs = await _take_all(queue, max_items=10)
    # One run of the bulk key, then the others, then the bulk backlog in runs of ten.
    assert [key for key, _ in runs[:3]] == ["bulk", "small", "other"]
    assert [items for key, items in runs if key == "bulk"] == [
        list(range(start, start + 10)) for start in range(0, 100, 10)
    ]


async def test_keys_take_turns_and_each_lane_keeps_its_order() -> None:
    queue = FairQueue[str, int](1000)
    rng = random.Random(5)  # noqa: S311 - a reproducible mix, not a secret
    expected: dict[str, list[int]] = {}
    for n in range(300):
        key = rng.choice("abc")
        queue.try_put(key, n)
        expected.setdefault(key, []).append(n)
    runs = await _take_all(queue, max_items=7)
    got: dict[str, list[int]] = {}
    for key, items in runs:
        got.setdefault(key, []).extend(items)
    assert got == expected
    # Turns: no key is served twice in a row while another key still has items waiting.
    keys = [key for key, _ in runs]
    for index in range(1, len(keys)):
        if keys[index] == keys[index - 1]:
            assert set(keys[index:]) == {keys[index]}, keys


async def test_a_run_stops_before_its_weight_passes_the_limit_but_never_empty() -> None:
    queue = FairQueue[str, int](100)
    for weight in (600, 300, 200, 5000, 1):
        queue.try_put("k", weight)
    runs = []
    while len(queue):
        _, items, lease = await queue.take(100, weight=lambda item: item, max_weight=1000)
        lease.release()
        runs.append(items)
    assert runs == [[600, 300], [200], [5000], [1]]


async def test_a_key_has_at_most_per_key_runs_out_at_once() -> None:
    queue = FairQueue[str, int](100, per_key=2)
    for n in range(6):
        queue.try_put("k", n)
    _, first, lease1 = await queue.take(1)
    _, second, lease2 = await queue.take(1)
    third = asyncio.create_task(queue.take(1))
    await settle()
    assert not third.done()  # both leases of the key are out: it waits
    queue.try_put("other", 99)
    other_key, other, other_lease = await asyncio.wait_for(third, 1)
    assert (other_key, other) == ("other", [99])  # ... but another key is served at once
    other_lease.release()
    lease1.release()
    _, got, lease3 = await asyncio.wait_for(queue.take(1), 1)
    assert (first, second, got) == ([0], [1], [2])
    lease1.release()  # releasing twice is harmless
    lease2.release()
    lease3.release()


async def test_capacity_refuses_newcomers_but_not_admitted_continuations() -> None:
    queue = FairQueue[str, int](2)
    assert queue.try_put("a", 1)
    assert queue.try_put("b", 2)
    assert not queue.try_put("c", 3)
    assert queue.try_put("a", 4, admitted=True)
    assert len(queue) == 3


async def test_close_hands_out_what_is_queued_then_says_closed() -> None:
    queue = FairQueue[str, int](10)
    queue.try_put("a", 1)
    queue.close()
    with pytest.raises(ChannelClosedError):
        queue.try_put("a", 2, admitted=True)
    _, items, lease = await queue.take(10)
    lease.release()
    assert items == [1]
    with pytest.raises(ChannelClosedError):
        await queue.take(10)


async def test_close_wakes_every_waiting_taker() -> None:
    queue = FairQueue[str, int](10)
    takers = [asyncio.create_task(queue.take(1)) for _ in range(3)]
    await settle()
    queue.close()
    results = await asyncio.gather(*takers, return_exceptions=True)
    assert [type(result) for result in results] == [ChannelClosedError] * 3


async def test_waiting_takers_are_served_first_come_first_served() -> None:
    queue = FairQueue[str, int](10)
    order: list[int] = []

    async def taker(number: int) -> None:
        _, _items, lease = await queue.take(1)
        order.append(number)
        lease.release()

    tasks = []
    for number in range(5):
        tasks.append(asyncio.create_task(taker(number)))
        await settle()
    for n in range(5):
        queue.try_put(f"k{n}", n)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]


async def test_a_cancelled_taker_takes_nothing_and_loses_nothing() -> None:
    queue = FairQueue[str, int](10_000)
    taken: Counter[int] = Counter()
    rng = random.Random(11)  # noqa: S311 - a reproducible mix, not a secret

    async def taker() -> None:
        while True:
            _, items, lease = await queue.take(3)
            taken.update(items)
            lease.release()

    takers = [asyncio.create_task(taker()) for _ in range(4)]
    for n in range(2000):
        queue.try_put(rng.choice("xyz"), n)
        if rng.random() < 0.2:
            victim = rng.randrange(len(takers))
            takers[victim].cancel()
            takers[victim] = asyncio.create_task(taker())
        if rng.random() < 0.3:
            await asyncio.sleep(0)
    await until(lambda: len(queue) == 0)
    for task in takers:
        task.cancel()
    await asyncio.gather(*takers, return_exceptions=True)
    assert taken == Counter(range(2000))


async def test_drain_takes_everything_queued() -> None:
    queue = FairQueue[str, int](10)
    for n, key in enumerate("abab"):
        queue.try_put(key, n)
    assert sorted(queue.drain()) == [0, 1, 2, 3]
    assert len(queue) == 0


async def test_a_short_run_takes_more_of_its_key_that_came_meanwhile() -> None:
    queue = FairQueue[str, int](100)
    queue.try_put("k", 1)
    _, items, lease = await queue.take(3)
    for n in (2, 3, 4):
        queue.try_put("k", n)
    queue.try_put("other", 9)
    queue.take_more(lease, items, 3)
    assert items == [1, 2, 3]
    queue.take_more(lease, items, 3)  # full: nothing more
    assert items == [1, 2, 3]
    lease.release()
    assert await _take_all(queue, 10) == [("other", [9]), ("k", [4])]
