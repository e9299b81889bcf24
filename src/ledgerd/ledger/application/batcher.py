"""Coalesce concurrent PostTransfers calls into shared units of work, fairly.

Every posting in a ledger takes the ledger's chain head lock, so postings in one ledger run
one after another whatever the hardware. What makes a ledger fast is therefore not more
concurrency but fewer, larger transactions: one lock of each touched account, one head
update and one commit (one fsync) for many callers at once.

Callers ``submit`` a command and wait for exactly their own results. Calls queue in a lane
per ledger (a :class:`FairQueue`); whenever one of ``workers`` slots is free, the next ledger
in turn hands over what its lane holds (at most ``max_batch`` calls and ``group_transfers``
transfers) as one group, posted by :meth:`PostTransfersHandler.post_group`, which keeps every
per-call guarantee (own results, atomic calls all-or-nothing, idempotency, chain order). A
ledger has at most two groups out at once (one committing while the next is decided); the
other slots go to other ledgers, each in turn.

Fairness: one caller's big work never holds up everyone else's small work. Ledgers take
turns, so a ledger with a backlog delays another's group by one group at most, and a
non-atomic call of more than ``group_transfers`` transfers is posted in parts, in order, each
part a group of its own (``posting_calls.wait_in_parts``), with other callers' groups in
between. An atomic call is all-or-nothing, so it stays whole.

Backpressure: at most ``queue_capacity`` calls wait; beyond it a call is refused at once with
``OVERLOADED`` and a retry hint, rather than the queue growing without bound. A caller that
gives up (deadline, cancelled call, closed connection) before its group is written is left
out of it; once the writing has begun, the commit decides its answer (``posting_calls``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
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
    split,
    wait_in_parts,
)
from ledgerd.ledger.domain.posting import Posted
from ledgerd.ledger.domain.requests import PostingRequest
from ledgerd.platform.concurrency import ChannelClosedError, FairQueue, Lease
from ledgerd.platform.throttled_log import ThrottledLog

log = logging.getLogger(__name__)

# Groups of one ledger out at once: one committing while the next is loaded and decided.
GROUPS_PER_LEDGER = 2


@dataclass(frozen=True, slots=True)
class BatchingOptions:
    max_batch: int = 256
    """Calls per group at most."""
    max_wait_s: float = 0.0
    """How long a ledger's first waiting call waits for more to join it; 0: not at all."""
    queue_capacity: int = 10_000
    """Calls waiting at most (beyond the groups in flight); beyond it, OVERLOADED."""
    workers: int = 2
    """Groups in flight at once, over all ledgers."""
    group_transfers: int = 250
    """Transfers per group at most; a bigger non-atomic call is posted in parts of this size.
    Bounds how long one group holds its ledger's lock (and, on SQLite, the database's) and
    the event loop, so that other callers wait for one group at most. Measured (docs/
    benchmarks.md, Fairness): 250 keeps another ledger's p99 under 250 ms beside back-to-back
    10,000-transfer batches, for ~15-20 % of those batches' own throughput against 1,000."""
    retry_after_s: float = 0.05
    """The retry hint given with OVERLOADED."""
    grace: CommitGrace = field(default_factory=CommitGrace)
    """How long a caller whose transfers are being written waits past its deadline."""


class PostingBatcher:
    """Posts commands through ``handler`` in shared groups; an async context manager."""

    def __init__(self, handler: PostTransfersHandler, options: BatchingOptions) -> None:
        self._handler = handler
        self._options = options
        self._alone = UnbatchedPoster(handler, options.grace)
        self._failures = ThrottledLog(log)
        self._queue: FairQueue[str, PostingCall] = FairQueue(
            options.queue_capacity, per_key=min(GROUPS_PER_LEDGER, options.workers)
        )
        self._groups: set[asyncio.Task[None]] = set()
        self._finishing: set[asyncio.Future[None]] = set()  # parts posted alone at shutdown
        self._dispatcher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._dispatcher = asyncio.create_task(self._dispatch(), name="posting-batcher")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop taking calls and finish every call already accepted."""
        self._queue.close()
        if self._dispatcher is not None:
            # Waited for, not awaited: a dispatcher that died must not fail the shutdown.
            await asyncio.wait([self._dispatcher])
            if not self._dispatcher.cancelled() and self._dispatcher.exception() is not None:
                log.error("the posting batcher had stopped", exc_info=self._dispatcher.exception())
            self._dispatcher = None

    # -- the callers' side ------------------------------------------------------------------

    def _running(self) -> bool:
        return (
            self._dispatcher is not None and not self._dispatcher.done() and not self._queue.closed
        )

    async def __call__(self, command: PostTransfers) -> Outcome:
        check_command(command)
        if not self._running():
            # Not running (or shutting down, or its dispatcher died): post alone, don't refuse.
            return await self._alone(command)
        parts = split(command, self._options.group_transfers)
        call = PostingCall.start(parts[0])
        try:
            accepted = self._queue.try_put(command.ledger_id, call)
        except ChannelClosedError:
            return await self._alone(command)
        if not accepted:
            raise overloaded(self._options.retry_after_s)
        if len(parts) == 1:
            return await call.wait(self._options.grace)
        return await wait_in_parts(parts, self._next_part(call), self._options.grace)

    def _next_part(self, first: PostingCall) -> Callable[[PostTransfers], Awaitable[PostingCall]]:
        """What queues each part of a split call in turn (the first is queued already)."""

        async def post_part(part: PostTransfers) -> PostingCall:
            if part is first.command:
                return first
            call = PostingCall.start(part)
            try:
                # Admitted with the call: a part is never refused for want of room.
                self._queue.try_put(part.ledger_id, call, admitted=True)
            except ChannelClosedError:
                # Shutting down: the rest of an accepted call is still posted, alone, under
                # the same rules (a caller leaving before its writes leaves nothing behind).
                alone = asyncio.ensure_future(
                    post_and_answer(self._handler, [call], self._failures)
                )
                self._finishing.add(alone)
                alone.add_done_callback(self._finishing.discard)
            return call

        return post_part

    async def post_one(self, ledger_id: str, request: PostingRequest) -> Posted:
        """Post a single request and return its transfer, or raise its error."""
        return only_result(await self(PostTransfers(ledger_id, [request])))

    # -- the batching side ------------------------------------------------------------------

    async def _dispatch(self) -> None:
        slots = asyncio.Semaphore(self._options.workers)
        try:
            while True:
                # A slot first, then the group: whichever ledger is next in turn when a slot
                # frees up is served, not the one that happened to be next earlier.
                await slots.acquire()
                try:
                    _, calls, lease = await self._queue.take(
                        self._options.max_batch,
                        weight=lambda call: call.size,
                        max_weight=min(self._options.group_transfers, MAX_BATCH),
                    )
                except ChannelClosedError:
                    slots.release()
                    break  # closed and drained: finish the groups in flight
                if self._options.max_wait_s and len(calls) < self._options.max_batch:
                    await asyncio.sleep(self._options.max_wait_s)  # let more calls join it
                    self._queue.take_more(
                        lease,
                        calls,
                        self._options.max_batch,
                        weight=lambda call: call.size,
                        max_weight=min(self._options.group_transfers, MAX_BATCH),
                    )
                group = asyncio.create_task(self._post(calls, lease, slots))
                self._groups.add(group)
                group.add_done_callback(self._groups.discard)
            await asyncio.gather(*self._groups)
        finally:
            # Normally nothing is left here. If the dispatcher was cancelled or broke, every
            # call it had accepted but not answered gets an error instead of waiting forever.
            self._queue.close()
            for group in self._groups:
                group.cancel()
            for call in self._queue.drain():
                call.fail(_stranded(call))

    async def _post(
        self, calls: list[PostingCall], lease: Lease[str], slots: asyncio.Semaphore
    ) -> None:
        staying = [call for call in calls if not call.gone()]
        try:
            if staying:
                await post_and_answer(self._handler, staying, self._failures)
        except asyncio.CancelledError:
            for call in staying:
                call.fail(_stranded(call))
            raise
        finally:
            lease.release()
            slots.release()


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
