"""Coalesce concurrent PostTransfers calls into shared units of work.

Every posting in a ledger takes the ledger's chain head lock, so postings in one ledger run
one after another whatever the hardware. What makes a ledger fast is therefore not more
concurrency but fewer, larger transactions: one lock of each touched account, one head
update and one commit (one fsync) for many callers at once.

Callers ``submit`` a command and wait for exactly their own results. A collector takes
whatever has queued up (at most ``max_batch`` calls, waiting ``max_wait_s`` for more after the
first; 0 means "what is there now", so a lone caller is not delayed) and hands the batch to
one of ``workers`` posters; while one batch commits, the next one is being gathered and
decided. Each ledger's share of a batch is posted by :meth:`PostTransfersHandler.post_group`,
which keeps every per-call guarantee (own results, atomic calls all-or-nothing, idempotency,
chain order).

Backpressure: the queue is bounded; a full queue refuses at once with ``OVERLOADED`` and a
retry hint, rather than growing without bound. A caller that gives up (deadline, cancelled
call, closed connection) before its batch is written is left out of it; see ``post_group``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

from ledgerd.kernel.deadline import deadline_scope, remaining
from ledgerd.kernel.errors import RETRY_AFTER_DETAIL, ErrorCode, LedgerdError
from ledgerd.ledger.application.post_transfers import (
    MAX_BATCH,
    Outcome,
    PostTransfers,
    PostTransfersHandler,
    check_command,
    only_result,
)
from ledgerd.ledger.domain.posting import Posted
from ledgerd.ledger.domain.requests import PostingRequest
from ledgerd.platform.concurrency import Channel, ChannelClosedError, WorkerPool

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchingOptions:
    max_batch: int = 256
    """Calls per batch at most (each call may hold up to MAX_BATCH transfers)."""
    max_wait_s: float = 0.0
    """How long to wait for more calls once one is there; 0: take only what has queued up."""
    queue_capacity: int = 10_000
    """Calls waiting at most, beyond the batches in hand (one per worker, one waiting for a
    worker, one being gathered); beyond it, OVERLOADED."""
    workers: int = 2
    """Batches in flight at once: one committing while the next is gathered and decided."""
    retry_after_s: float = 0.05
    """The retry hint given with OVERLOADED."""


@dataclass(eq=False, slots=True)
class _Job:
    command: PostTransfers
    future: asyncio.Future[Outcome]
    deadline: float | None  # the caller's, on the monotonic clock; None: the caller set none

    @property
    def size(self) -> int:
        return len(self.command.requests)

    def abandoned(self) -> bool:
        # The caller awaits the future directly, so its cancellation cancels the future.
        return self.future.cancelled()


class PostingBatcher:
    """Posts commands through ``handler`` in shared batches; an async context manager."""

    def __init__(self, handler: PostTransfersHandler, options: BatchingOptions) -> None:
        self._handler = handler
        self._options = options
        self._queue: Channel[_Job] = Channel(options.queue_capacity)
        self._collector: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._collector = asyncio.create_task(self._collect(), name="posting-batcher")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop taking calls and finish every call already accepted."""
        self._queue.close()
        if self._collector is not None:
            # Waited for, not awaited: a collector that died must not fail the shutdown.
            await asyncio.wait([self._collector])
            if not self._collector.cancelled() and self._collector.exception() is not None:
                log.error("the posting batcher had stopped", exc_info=self._collector.exception())
            self._collector = None

    # -- the callers' side ------------------------------------------------------------------

    async def __call__(self, command: PostTransfers) -> Outcome:
        check_command(command)
        if self._collector is None or self._collector.done() or self._queue.closed:
            # Not running (or shutting down, or its collector died): post alone, don't refuse.
            return await self._handler(command)
        left = remaining()
        deadline = None if left is None else time.monotonic() + left
        job = _Job(command, asyncio.get_running_loop().create_future(), deadline)
        try:
            accepted = self._queue.try_send(job)
        except ChannelClosedError:
            return await self._handler(command)
        if not accepted:
            raise overloaded(self._options.retry_after_s)
        return await job.future

    async def post_one(self, ledger_id: str, request: PostingRequest) -> Posted:
        """Post a single request and return its transfer, or raise its error."""
        return only_result(await self(PostTransfers(ledger_id, [request])))

    # -- the batching side ------------------------------------------------------------------

    async def _collect(self) -> None:
        # One gathered batch may wait for a free worker; meanwhile new calls queue up in the
        # channel and make the batch after it bigger, which is the point.
        pool = WorkerPool(self._post_batch, workers=self._options.workers, queue_size=1)
        handing_over: list[_Job] = []  # taken off the queue, not yet accepted by the pool
        try:
            async with pool:
                while True:
                    try:
                        jobs = await self._queue.receive_batch(
                            self._options.max_batch, self._options.max_wait_s
                        )
                    except ChannelClosedError:
                        return  # closed and drained; leaving the pool finishes batches in flight
                    handing_over = [job for job in jobs if not job.abandoned()]
                    if handing_over:
                        await pool.submit(handing_over)
                    handing_over = []
        finally:
            # Normally nothing is left here. If the collector was cancelled or broke, every call
            # it had accepted but not answered gets an error instead of waiting forever.
            self._queue.close()
            stranded = [job for batch in pool.abandoned for job in batch]
            stranded += handing_over + self._queue.drain()
            for job in stranded:
                _fail(job, BatcherStoppedError("the posting batcher stopped; retry the call"))

    async def _post_batch(self, jobs: list[_Job]) -> None:
        by_ledger: dict[str, list[_Job]] = {}
        for job in jobs:
            by_ledger.setdefault(job.command.ledger_id, []).append(job)
        for ledger_jobs in by_ledger.values():
            for group in _groups_within(ledger_jobs, MAX_BATCH):
                await self._post_group(group)

    async def _post_group(self, jobs: Sequence[_Job]) -> None:
        try:
            outcomes = await self._unless_all_gone(jobs)
        except LedgerdError as error:
            # About the ledger itself (it does not exist), or every caller's deadline passed:
            # the same answer for every call.
            for job in jobs:
                _fail(job, error)
            return
        except Exception as error:
            if len(jobs) > 1:
                # Something no rule foresaw: post each call alone so only its culprit fails.
                log.warning(
                    "group of %d calls failed (%r); posting them one by one", len(jobs), error
                )
                for job in jobs:
                    await self._post_group([job])
                return
            log.exception("posting failed")
            _fail(jobs[0], error)
            return
        if outcomes is None:
            return  # every caller had gone: nothing was written
        for job, outcome in zip(jobs, outcomes, strict=True):
            if outcome is not None and not job.future.done():
                job.future.set_result(outcome)

    async def _unless_all_gone(self, jobs: Sequence[_Job]) -> list[Outcome | None] | None:
        """Post the group; stop it (None) as soon as its last caller has given up.

        A caller leaving alone is handled by ``post_group`` (left out before the writes); when
        all have left, the work itself is cancelled, so a group waiting on a lock stops waiting.
        """

        async def post() -> list[Outcome | None]:
            async with deadline_scope(_latest_deadline(jobs)):
                return await self._handler.post_group(
                    jobs[0].command.ledger_id,
                    [job.command for job in jobs],
                    abandoned=lambda: {i for i, job in enumerate(jobs) if job.abandoned()},
                )

        work = asyncio.ensure_future(post())
        staying = len(jobs)

        def one_left(future: asyncio.Future[Outcome]) -> None:
            nonlocal staying
            if future.cancelled():
                staying -= 1
                if staying == 0:
                    work.cancel()

        for job in jobs:
            job.future.add_done_callback(one_left)
        try:
            return await work
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if staying == 0 and (current is None or current.cancelling() == 0):
                return None
            raise
        finally:
            for job in jobs:
                job.future.remove_done_callback(one_left)


class BatcherStoppedError(RuntimeError):
    """The batcher stopped before answering a call it had accepted (a bug or a hard stop)."""


def overloaded(retry_after_s: float) -> LedgerdError:
    return LedgerdError(
        ErrorCode.OVERLOADED,
        "too many transfers are waiting to be posted; retry shortly",
        {RETRY_AFTER_DETAIL: f"{retry_after_s:g}"},
    )


def _fail(job: _Job, error: BaseException) -> None:
    if not job.future.done():
        job.future.set_exception(error)


def _latest_deadline(jobs: Sequence[_Job]) -> float | None:
    """No batch outlives all its callers: the latest of their deadlines, if every one has one."""
    deadlines = [job.deadline for job in jobs]
    if any(deadline is None for deadline in deadlines):
        return None
    return max(deadline for deadline in deadlines if deadline is not None) - time.monotonic()


def _groups_within(jobs: Sequence[_Job], limit: int) -> list[list[_Job]]:
    """Consecutive runs of jobs holding at most ``limit`` transfers together (one if bigger)."""
    groups: list[list[_Job]] = []
    size = 0
    for job in jobs:
        if groups and size + job.size <= limit:
            groups[-1].append(job)
            size += job.size
        else:
            groups.append([job])
            size = job.size
    return groups
