"""A caller's PostTransfers call on its way through a unit of work, and the answer it gets.

The rule every answer keeps: **a definite failure means nothing was written.** A call's
transfers are decided with others' in one unit of work (a group). Until the group begins to
write, a caller who gives up (its deadline, a cancelled call, a closed connection) leaves it:
the group is decided again without it, and "deadline exceeded" is the truth. From the moment
the group begins to write, its callers are bound to it: whatever happens to a caller, the
group's commit decides, and that outcome is its answer — even a little after its deadline,
within a grace. If the outcome is still not known when the grace is over, the answer says so
(``OUTCOME_UNKNOWN``: retry with the same idempotency key, or look it up) instead of guessing.

Each group runs in a task of its own, never in a caller's: cancelling a caller never
cancels a write half-way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Self

from ledgerd.kernel.deadline import DeadlineExceededError, deadline_known, remaining
from ledgerd.kernel.errors import LedgerdError, OutcomeUnknownError
from ledgerd.kernel.result import Err
from ledgerd.ledger.application.post_transfers import (
    Outcome,
    PostTransfers,
    PostTransfersHandler,
    check_command,
    only_result,
)
from ledgerd.ledger.domain.posting import Posted
from ledgerd.ledger.domain.requests import PostingRequest
from ledgerd.platform.throttled_log import ThrottledLog

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CommitGrace:
    """How long past its deadline a caller waits for the commit of a group writing its transfers.

    Beyond it the answer is ``OUTCOME_UNKNOWN``. Writes are short (the slow part, waiting for
    locks, comes before them), so the grace is rarely used, and only ever briefly.
    """

    seconds: float = 2.0


@dataclass(eq=False, slots=True)
class PostingCall:
    command: PostTransfers
    future: asyncio.Future[Outcome]
    """What the caller awaits: cancelling the caller cancels it, at once."""
    deadline: float | None
    """The caller's, on the monotonic clock; None: the caller set none."""
    committed: asyncio.Future[Outcome] | None = field(default=None)
    """Made when its group begins to write: the outcome the commit decides, for the caller
    even after it stopped waiting on ``future``. Once there, the caller cannot leave."""
    caller_left: bool = field(default=False)
    """The caller was cancelled (its deadline, or it went away) while its group wrote."""

    @classmethod
    def start(cls, command: PostTransfers) -> Self:
        left = remaining()
        deadline = None if left is None else time.monotonic() + left
        return cls(command, asyncio.get_running_loop().create_future(), deadline)

    @property
    def size(self) -> int:
        return len(self.command.requests)

    @property
    def writing(self) -> bool:
        return self.committed is not None

    def gone(self) -> bool:
        """The caller left before its group began to write."""
        return self.future.cancelled() and self.committed is None

    def bind(self) -> None:
        """Its group begins to write: from now on the commit decides the caller's answer."""
        if self.committed is None:
            self.committed = asyncio.get_running_loop().create_future()
            # Its caller may have stopped waiting (an unknown outcome, a client gone): an
            # error nobody reads is expected here, not worth asyncio's "never retrieved".
            self.committed.add_done_callback(_read)

    def answer(self, outcome: Outcome) -> None:
        for future in (self.future, self.committed):
            if future is not None and not future.done():
                future.set_result(outcome)

    def fail(self, error: BaseException) -> None:
        for future in (self.future, self.committed):
            if future is not None and not future.done():
                future.set_exception(error)

    async def wait(self, grace: CommitGrace) -> Outcome:
        """The call's outcome, as the caller is owed it (see the module's rule)."""
        try:
            # Awaited directly, so that a caller cancelled before the writes is gone at once.
            return await self.future
        except asyncio.CancelledError:
            if self.future.done() and not self.future.cancelled():
                return self.future.result()  # decided as the cancellation came: the truth
            if self.committed is None:
                raise  # left in time: nothing of it will be written
            committed = self.committed
            self.caller_left = True
        # The caller's deadline passed or it was cancelled, but its group is writing.
        try:
            async with asyncio.timeout(grace.seconds):
                return await asyncio.shield(committed)
        except TimeoutError:
            raise OutcomeUnknownError(
                f"the transfers were being committed when the call's deadline passed, and the "
                f"commit had not finished {grace.seconds:g} s later"
            ) from None


def _read(future: asyncio.Future[Outcome]) -> None:
    if not future.cancelled():
        future.exception()


class GroupCallers:
    """The callers of one group, as the handler sees them (``Callers``)."""

    def __init__(self, calls: Sequence[PostingCall]) -> None:
        self._calls = calls

    def gone(self) -> Collection[int]:
        return {index for index, call in enumerate(self._calls) if call.gone()}

    def writes_begin(self) -> None:
        for call in self._calls:
            if not call.gone():
                call.bind()


async def post_and_answer(
    handler: PostTransfersHandler, calls: Sequence[PostingCall], failures: ThrottledLog
) -> None:
    """Post ``calls`` (all of one ledger) in one unit of work and answer each of them.

    ``failures`` logs what no rule foresaw, once per kind and interval.
    """
    try:
        outcomes = await _unless_all_gone(handler, calls)
    except LedgerdError as error:
        # About the ledger itself (it does not exist), the database, or an unknown commit
        # outcome: the same answer for every call of the group.
        for call in calls:
            call.fail(error)
        return
    except Exception as error:  # noqa: BLE001 - the unforeseen is logged and answered, never lost
        if len(calls) > 1:
            # Something no rule foresaw: post each call alone so only its culprit fails.
            failures.log(
                logging.WARNING,
                f"group {type(error).__name__}",
                "a group of %d calls failed (%r); posting them one by one",
                len(calls),
                error,
            )
            for call in calls:
                await post_and_answer(handler, [call], failures)
            return
        failures.log(
            logging.ERROR,
            type(error).__name__,
            "posting failed",
            error=error,
            traceback_level=logging.ERROR,
        )
        calls[0].fail(error)
        return
    if outcomes is None:
        return  # every caller had gone: nothing was written
    for call, outcome in zip(calls, outcomes, strict=True):
        if outcome is not None:
            call.answer(outcome)


async def _unless_all_gone(
    handler: PostTransfersHandler, calls: Sequence[PostingCall]
) -> list[Outcome | None] | None:
    """Post the group; stop it (None) as soon as its last caller has gone, if not yet writing.

    A caller leaving alone is left out by ``post_group``; when all have left before the writes
    began, the work itself is cancelled, so a group waiting on a lock stops waiting.
    """

    async def post() -> list[Outcome | None]:
        # The database bounds the group's waits by its callers' latest deadline; nothing
        # cancels the group when it passes (callers leave on their own, see above).
        with deadline_known(_latest_deadline(calls)):
            return await handler.post_group(
                calls[0].command.ledger_id,
                [call.command for call in calls],
                callers=GroupCallers(calls),
            )

    work = asyncio.ensure_future(post())
    staying = len(calls)

    def one_left(call: PostingCall, _future: asyncio.Future[Outcome]) -> None:
        nonlocal staying
        if call.gone():
            staying -= 1
            if staying == 0:
                work.cancel()  # none of them is writing: a writing caller cannot leave

    callbacks = [functools.partial(one_left, call) for call in calls]
    for call, callback in zip(calls, callbacks, strict=True):
        call.future.add_done_callback(callback)
    try:
        # Shielded: whoever runs the group (a batcher worker) being cancelled must not cut a
        # write short; the group finishes and its callers get its outcome.
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        if work.cancelled() and staying == 0:
            return None
        # Whoever ran the group stopped (a hard stop). Not writing yet: the group stops too,
        # and nothing of it is written. Writing: it goes on, and answers whoever is still
        # waiting when it ends.
        if any(call.writing for call in calls):
            work.add_done_callback(lambda done: _answer_late(calls, done))
        else:
            work.cancel()
        raise
    finally:
        for call, callback in zip(calls, callbacks, strict=True):
            call.future.remove_done_callback(callback)


def _answer_late(calls: Sequence[PostingCall], work: asyncio.Future[list[Outcome | None]]) -> None:
    if work.cancelled():
        return
    error = work.exception()
    if error is not None:
        for call in calls:
            call.fail(error)
        return
    for call, outcome in zip(calls, work.result(), strict=True):
        if outcome is not None:
            call.answer(outcome)


def _latest_deadline(calls: Sequence[PostingCall]) -> float | None:
    """No group outlives all its callers: the latest of their deadlines, if every one has one."""
    deadlines = [call.deadline for call in calls]
    if any(deadline is None for deadline in deadlines):
        return None
    return max(deadline for deadline in deadlines if deadline is not None) - time.monotonic()


def split(command: PostTransfers, part_size: int) -> list[PostTransfers]:
    """``command`` as consecutive parts of at most ``part_size`` requests (atomic: whole)."""
    if command.atomic or len(command.requests) <= part_size:
        return [command]
    requests = command.requests
    return [
        PostTransfers(command.ledger_id, requests[start : start + part_size])
        for start in range(0, len(requests), part_size)
    ]


async def wait_in_parts(
    parts: Sequence[PostTransfers],
    post_part: Callable[[PostTransfers], Awaitable[PostingCall]],
    grace: CommitGrace,
) -> Outcome:
    """A call posted as ``parts``, each after the one before it has its outcome.

    Parts keep the call's order (a later transfer may spend what an earlier one paid in),
    and other callers' work fits in between them, so one big call never holds everybody up.
    Each part keeps the rule of the module: while none has begun to write, a caller who gives
    up leaves the whole call, and nothing is written. Once one has, the answer is item by item:
    what was committed, what is unknown (OUTCOME_UNKNOWN), and DEADLINE_EXCEEDED for the parts
    never started, which were not written.
    """
    results: Outcome = []
    for index, part in enumerate(parts):
        call = await post_part(part)
        try:
            outcome = await call.wait(grace)
        except asyncio.CancelledError:
            if not results:
                raise  # nothing written at all: the caller's cancellation stands
            return results + _not_started(parts[index:])
        except OutcomeUnknownError as error:
            return results + [Err(error)] * len(part.requests) + _not_started(parts[index + 1 :])
        except LedgerdError as error:
            if not results:
                raise  # the call failed as a whole, before any part was written
            return results + [Err(error)] * sum(len(p.requests) for p in parts[index:])
        results.extend(outcome)
        if call.caller_left:
            return results + _not_started(parts[index + 1 :])
    return results


def _not_started(parts: Sequence[PostTransfers]) -> Outcome:
    error = DeadlineExceededError()
    return [Err(error)] * sum(len(part.requests) for part in parts)


class UnbatchedPoster:
    """Posts each call in a unit of work of its own, with the same answers as the batcher."""

    def __init__(self, handler: PostTransfersHandler, grace: CommitGrace) -> None:
        self._handler = handler
        self._grace = grace
        self._failures = ThrottledLog(log)
        # Groups whose caller stopped waiting (an unknown outcome) finish on their own; kept
        # here so that they are not collected half-way.
        self._finishing: set[asyncio.Task[None]] = set()

    async def __call__(self, command: PostTransfers) -> Outcome:
        check_command(command)
        call = PostingCall.start(command)
        work = asyncio.ensure_future(post_and_answer(self._handler, [call], self._failures))
        self._finishing.add(work)
        work.add_done_callback(self._finishing.discard)
        return await call.wait(self._grace)

    async def post_one(self, ledger_id: str, request: PostingRequest) -> Posted:
        """Post a single request and return its transfer, or raise its error."""
        return only_result(await self(PostTransfers(ledger_id, [request])))
