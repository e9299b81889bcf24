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
call, closed connection) before its batch is written is left out of it; once the writing has
begun, the commit decides its answer (``posting_calls``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Self

from ledgerd.kernel.errors import (
    RETRY_AFTER_DETAIL,
    ErrorCode,
    LedgerdError,
    OutcomeUnknownError,
    unavailable,
)
from ledgerd.ledger.application.post_transfers import (
    MAX_BATCH,
    Outcome,
    PostTransfers,
    PostTransfersHandler,
    check_command,
    only_result,
)
from ledgerd.ledger.application.posting_calls import (
    CommitGrace,
    PostingCall,
    UnbatchedPoster,
    post_and_answer,
)
from ledgerd.ledger.domain.posting import Posted
from ledgerd.ledger.domain.requests import PostingRequest
from ledgerd.platform.concurrency import Channel, ChannelClosedError, WorkerPool
from ledgerd.platform.throttled_log import ThrottledLog

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
    grace: CommitGrace = field(default_factory=CommitGrace)
    """How long a caller whose transfers are being written waits past its deadline."""


class PostingBatcher:
    """Posts commands through ``handler`` in shared batches; an async context manager."""

    def __init__(self, handler: PostTransfersHandler, options: BatchingOptions) -> None:
        self._handler = handler
        self._options = options
        self._alone = UnbatchedPoster(handler, options.grace)
        self._failures = ThrottledLog(log)
        self._queue: Channel[PostingCall] = Channel(options.queue_capacity)
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
            return await self._alone(command)
        call = PostingCall.start(command)
        try:
            accepted = self._queue.try_send(call)
        except ChannelClosedError:
            return await self._alone(command)
        if not accepted:
            raise overloaded(self._options.retry_after_s)
        return await call.wait(self._options.grace)

    async def post_one(self, ledger_id: str, request: PostingRequest) -> Posted:
        """Post a single request and return its transfer, or raise its error."""
        return only_result(await self(PostTransfers(ledger_id, [request])))

    # -- the batching side ------------------------------------------------------------------

    async def _collect(self) -> None:
        # One gathered batch may wait for a free worker; meanwhile new calls queue up in the
        # channel and make the batch after it bigger, which is the point.
        pool = WorkerPool(self._post_batch, workers=self._options.workers, queue_size=1)
        handing_over: list[PostingCall] = []  # taken off the queue, not accepted by the pool
        try:
            async with pool:
                while True:
                    try:
                        calls = await self._queue.receive_batch(
                            self._options.max_batch, self._options.max_wait_s
                        )
                    except ChannelClosedError:
                        return  # closed and drained; leaving the pool finishes batches in flight
                    handing_over = [call for call in calls if not call.gone()]
                    if handing_over:
                        await pool.submit(handing_over)
                    handing_over = []
        finally:
            # Normally nothing is left here. If the collector was cancelled or broke, every call
            # it had accepted but not answered gets an error instead of waiting forever.
            self._queue.close()
            stranded = [call for batch in pool.abandoned for call in batch]
            stranded += handing_over + self._queue.drain()
            for call in stranded:
                call.fail(_stranded(call))

    async def _post_batch(self, calls: list[PostingCall]) -> None:
        by_ledger: dict[str, list[PostingCall]] = {}
        for call in calls:
            by_ledger.setdefault(call.command.ledger_id, []).append(call)
        for ledger_calls in by_ledger.values():
            for group in _groups_within(ledger_calls, MAX_BATCH):
                await post_and_answer(self._handler, group, self._failures)


def _stranded(call: PostingCall) -> LedgerdError:
    """The answer for a call the batcher accepted and stopped before answering (a hard stop)."""
    if call.writing:
        return OutcomeUnknownError("the posting batcher stopped while committing the transfers")
    return unavailable("the posting batcher (it stopped)")


def overloaded(retry_after_s: float) -> LedgerdError:
    return LedgerdError(
        ErrorCode.OVERLOADED,
        "too many transfers are waiting to be posted; retry shortly",
        {RETRY_AFTER_DETAIL: f"{retry_after_s:g}"},
    )


def _groups_within(calls: Sequence[PostingCall], limit: int) -> list[list[PostingCall]]:
    """Consecutive runs of calls holding at most ``limit`` transfers together (one if bigger)."""
    groups: list[list[PostingCall]] = []
    size = 0
    for call in calls:
        if groups and size + call.size <= limit:
            groups[-1].append(call)
            size += call.size
        else:
            groups.append([call])
            size = call.size
    return groups
