"""RWLock: shared reads, exclusive writes, fairness both ways, safe under cancellation."""

import asyncio
import random

import pytest

from ledgerd.platform.concurrency import RWLock
from tests.unit.platform.concurrency.support import settle


async def hold_read(lock: RWLock, log: list[str], name: str, release: asyncio.Event) -> None:
    async with lock.read():
        log.append(name)
        await release.wait()


async def hold_write(lock: RWLock, log: list[str], name: str, release: asyncio.Event) -> None:
    async with lock.write():
        log.append(name)
        await release.wait()


def held(lock: RWLock) -> tuple[int, bool]:
    """Readers inside, and whether a writer is (a call, so mypy does not narrow it)."""
    return lock.readers, lock.writing


async def test_readers_share_the_lock() -> None:
    lock = RWLock()
    release = asyncio.Event()
    log: list[str] = []
    readers = [asyncio.create_task(hold_read(lock, log, f"r{i}", release)) for i in range(3)]
    await settle()
    assert lock.readers == 3
    assert sorted(log) == ["r0", "r1", "r2"]
    release.set()
    await asyncio.gather(*readers)
    assert lock.readers == 0


async def test_a_writer_excludes_readers_and_other_writers() -> None:
    lock = RWLock()
    release = asyncio.Event()
    log: list[str] = []
    writer = asyncio.create_task(hold_write(lock, log, "w1", release))
    await settle()
    others = [
        asyncio.create_task(hold_read(lock, log, "r", release)),
        asyncio.create_task(hold_write(lock, log, "w2", release)),
    ]
    await settle()
    assert log == ["w1"]
    assert lock.writing
    release.set()
    await asyncio.gather(writer, *others)
    assert log[0] == "w1"
    assert sorted(log) == ["r", "w1", "w2"]


async def test_a_waiting_writer_holds_back_new_readers() -> None:
    """Writer preference: readers keep arriving, yet the writer goes next."""
    lock = RWLock()
    log: list[str] = []
    first_readers_done = asyncio.Event()
    free = asyncio.Event()
    early = [asyncio.create_task(hold_read(lock, log, "early", first_readers_done))]
    await settle()
    writer = asyncio.create_task(hold_write(lock, log, "writer", free))
    await settle()
    late = asyncio.create_task(hold_read(lock, log, "late", free))
    await settle()
    assert log == ["early"]  # the late reader waits behind the waiting writer
    first_readers_done.set()
    await asyncio.gather(*early)
    await settle()
    assert log == ["early", "writer"]
    free.set()
    await asyncio.gather(writer, late)
    assert log == ["early", "writer", "late"]


async def test_readers_waiting_when_a_writer_leaves_go_before_the_next_writer() -> None:
    """Readers do not starve either: the phases alternate."""
    lock = RWLock()
    log: list[str] = []
    first = asyncio.Event()
    rest = asyncio.Event()
    writer1 = asyncio.create_task(hold_write(lock, log, "w1", first))
    await settle()
    reader = asyncio.create_task(hold_read(lock, log, "r", rest))
    await settle()
    writer2 = asyncio.create_task(hold_write(lock, log, "w2", rest))
    await settle()
    first.set()
    await writer1
    await settle()
    assert log == ["w1", "r"]
    rest.set()
    await asyncio.gather(reader, writer2)
    assert log == ["w1", "r", "w2"]


async def test_a_cancelled_waiting_writer_lets_the_readers_behind_it_in() -> None:
    lock = RWLock()
    log: list[str] = []
    hold = asyncio.Event()
    reader1 = asyncio.create_task(hold_read(lock, log, "r1", hold))
    await settle()
    writer = asyncio.create_task(hold_write(lock, log, "w", hold))
    await settle()
    reader2 = asyncio.create_task(hold_read(lock, log, "r2", hold))
    await settle()
    assert log == ["r1"]
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer
    await settle()
    assert log == ["r1", "r2"]  # nothing holds r2 back any more
    hold.set()
    await asyncio.gather(reader1, reader2)
    assert lock.readers == 0
    assert not lock.writing


async def test_a_writer_cancelled_after_being_handed_the_lock_gives_it_back() -> None:
    lock = RWLock()
    await lock.acquire_read()
    writer = asyncio.create_task(lock.acquire_write())
    await settle()
    lock.release_read()  # hands the lock to the writer, which has not run yet
    assert held(lock) == (0, True)
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer
    assert held(lock) == (0, False)
    async with lock.write():  # free again
        assert held(lock) == (0, True)


async def test_a_reader_cancelled_after_being_admitted_gives_its_share_back() -> None:
    lock = RWLock()
    await lock.acquire_write()
    reader = asyncio.create_task(lock.acquire_read())
    await settle()
    lock.release_write()
    assert lock.readers == 1
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert lock.readers == 0
    async with lock.write():
        pass


async def test_releasing_what_is_not_held_is_an_error() -> None:
    lock = RWLock()
    with pytest.raises(RuntimeError):
        lock.release_read()
    with pytest.raises(RuntimeError):
        lock.release_write()


@pytest.mark.parametrize("seed", range(10))
async def test_exclusion_holds_under_contention_and_random_cancellation(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - a reproducible schedule, not a secret
    lock = RWLock()
    state = {"readers": 0, "writers": 0}
    violations: list[str] = []
    completed = {"read": 0, "write": 0}

    def check() -> None:
        if state["writers"] > 1 or (state["writers"] and state["readers"]):
            violations.append(f"{state}")

    async def read() -> None:
        async with lock.read():
            state["readers"] += 1
            try:
                check()
                await settle(rng.randint(0, 3))
                check()
            finally:
                state["readers"] -= 1
        completed["read"] += 1

    async def write() -> None:
        async with lock.write():
            state["writers"] += 1
            try:
                check()
                await settle(rng.randint(0, 3))
                check()
            finally:
                state["writers"] -= 1
        completed["write"] += 1

    tasks = [asyncio.create_task(read() if rng.random() < 0.7 else write()) for _ in range(60)]
    for _ in range(15):
        await settle(rng.randint(0, 2))
        victim = rng.choice(tasks)
        victim.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert not violations
    assert completed["read"] + completed["write"] == sum(1 for r in results if r is None)
    assert completed["read"] > 0
    assert completed["write"] > 0
    assert lock.readers == 0
    assert not lock.writing
