"""WorkerPool: bounded workers, backpressure on submit, graceful close, lossless cancellation."""

import asyncio
import random

import pytest

from ledgerd.kernel import deadline
from ledgerd.kernel.deadline import DeadlineExceededError
from ledgerd.platform.concurrency import ChannelClosedError, Context, WorkerPool
from tests.unit.platform.concurrency.support import settle, until


class Recorder:
    """A handler that records what it did and can be held at a gate."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.gate = gate
        self.done: list[int] = []
        self.interrupted: list[int] = []
        self.running = 0
        self.peak = 0

    async def __call__(self, job: int) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.interrupted.append(job)
            raise
        finally:
            self.running -= 1
        self.done.append(job)


async def test_every_submitted_job_is_done_by_at_most_workers_tasks() -> None:
    gate = asyncio.Event()
    handler = Recorder(gate)
    async with WorkerPool(handler, workers=3, queue_size=2) as pool:
        submitting = asyncio.create_task(_submit_all(pool, range(20)))
        await until(lambda: handler.running == 3)
        await settle()
        assert handler.running == 3  # a fourth job waits in the queue, not in a handler
        gate.set()
        await submitting
    assert sorted(handler.done) == list(range(20))
    assert handler.peak == 3
    assert pool.completed == 20
    assert pool.abandoned == ()


async def _submit_all(pool: WorkerPool[int], jobs: range) -> None:
    for job in jobs:
        await pool.submit(job)


async def test_submit_waits_and_try_submit_refuses_when_the_queue_is_full() -> None:
    gate = asyncio.Event()
    handler = Recorder(gate)
    async with WorkerPool(handler, workers=2, queue_size=2) as pool:
        for job in range(4):  # two running, two queued
            await pool.submit(job)
        await settle()
        assert handler.running == 2
        assert pool.queued == 2
        assert not pool.try_submit(4)
        submitting = asyncio.create_task(pool.submit(4))
        await settle()
        assert not submitting.done()
        gate.set()
        await submitting
    assert sorted(handler.done) == [0, 1, 2, 3, 4]


async def test_close_finishes_accepted_work_and_refuses_new_jobs() -> None:
    gate = asyncio.Event()
    handler = Recorder(gate)
    async with WorkerPool(handler, workers=1, queue_size=3) as pool:
        for job in range(4):
            await pool.submit(job)
        closing = asyncio.create_task(pool.close())
        await settle()
        with pytest.raises(ChannelClosedError):
            await pool.submit(99)
        assert not closing.done()
        gate.set()
        await closing
        assert handler.done == [0, 1, 2, 3]  # one worker: in order
    assert pool.abandoned == ()


async def test_cancel_interrupts_running_jobs_and_lists_every_unfinished_one() -> None:
    handler = Recorder(asyncio.Event())  # never opens
    async with WorkerPool(handler, workers=2, queue_size=3) as pool:
        for job in range(5):
            await pool.submit(job)
        await until(lambda: handler.running == 2)
        pool.cancel()
        with pytest.raises(ChannelClosedError):
            pool.try_submit(5)
    assert sorted(handler.interrupted) == [0, 1]
    assert list(pool.abandoned) == [*sorted(handler.interrupted), 2, 3, 4]
    assert handler.done == []


async def test_an_error_in_the_block_cancels_the_pool() -> None:
    handler = Recorder(asyncio.Event())
    pool = WorkerPool(handler, workers=1, queue_size=2)

    async def give_up() -> None:
        async with pool:
            for job in range(3):
                await pool.submit(job)
            await settle()
            raise KeyError("caller gave up")

    with pytest.raises(ExceptionGroup) as raised:
        await give_up()
    assert isinstance(raised.value.exceptions[0], KeyError)
    assert list(pool.abandoned) == [0, 1, 2]


async def test_a_failing_job_fails_the_pool_and_stops_the_intake() -> None:
    gate = asyncio.Event()
    handled: list[int] = []

    async def handler(job: int) -> None:
        if job == 0:
            raise RuntimeError("bad job")
        await gate.wait()
        handled.append(job)

    pool = WorkerPool(handler, workers=2, queue_size=4)

    async def submit_and_wait() -> None:
        async with pool:
            for job in range(4):
                await pool.submit(job)
            await asyncio.Event().wait()  # cancelled by the failure

    with pytest.raises(ExceptionGroup) as raised:
        await submit_and_wait()
    assert [type(error) for error in raised.value.exceptions] == [RuntimeError]
    assert handled == []
    assert sorted(pool.abandoned) == [1, 2, 3]
    with pytest.raises(ChannelClosedError):
        await pool.submit(4)


async def test_an_outer_cancellation_cancels_running_jobs() -> None:
    handler = Recorder(asyncio.Event())

    async def owner() -> WorkerPool[int]:
        async with WorkerPool(handler, workers=2) as pool:
            await pool.submit(1)
            await pool.submit(2)
            await asyncio.Event().wait()
        return pool

    running = asyncio.create_task(owner())
    await until(lambda: handler.running == 2)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert sorted(handler.interrupted) == [1, 2]


async def test_a_context_deadline_stops_the_pool_and_its_jobs_saw_that_deadline() -> None:
    seen: list[float | None] = []

    async def handler(_job: int) -> None:
        seen.append(deadline.remaining())  # what the database layer would use
        await asyncio.Event().wait()

    context = Context.background().with_deadline(0.05)
    pool = WorkerPool(handler, workers=2, queue_size=4)

    async def run() -> None:
        async with context.scope(), pool:
            for job in range(5):
                await pool.submit(job)
            await asyncio.Event().wait()

    with pytest.raises(DeadlineExceededError):
        await run()
    assert len(seen) == 2
    assert all(left is not None and left <= 0.05 for left in seen)
    assert sorted(pool.abandoned) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("seed", range(10))
async def test_every_accepted_job_is_completed_or_abandoned_whenever_it_is_cancelled(
    seed: int,
) -> None:
    rng = random.Random(seed)  # noqa: S311 - a reproducible schedule, not a secret
    accepted: list[int] = []

    completed: list[int] = []

    async def handle(job: int) -> None:
        await settle(rng.randint(0, 4))
        completed.append(job)

    pool = WorkerPool(handle, workers=rng.randint(1, 4), queue_size=rng.randint(1, 4))

    async def produce() -> None:
        async with pool:
            for job in range(50):
                await pool.submit(job)
                accepted.append(job)

    producing = asyncio.create_task(produce())
    await settle(rng.randint(1, 60))
    producing.cancel()
    await asyncio.gather(producing, return_exceptions=True)
    assert sorted(completed + list(pool.abandoned)) == accepted
    assert pool.completed == len(completed)


async def test_workers_must_be_positive() -> None:
    async def handler(_job: int) -> None:
        return None

    with pytest.raises(ValueError, match="workers"):
        WorkerPool(handler, workers=0)
