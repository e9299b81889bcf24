"""The batcher: concurrent calls share units of work, and each caller keeps its guarantees."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerd.kernel.deadline import deadline_scope
from ledgerd.kernel.errors import ErrorCode, LedgerdError, OutcomeUnknownError
from ledgerd.kernel.result import Err, Ok
from ledgerd.ledger.application.batcher import BatchingOptions, PostingBatcher
from ledgerd.ledger.application.post_transfers import (
    ALONE,
    Callers,
    Malformed,
    Outcome,
    PostTransfers,
    PostTransfersHandler,
    TransferPoster,
)
from ledgerd.ledger.application.posting_calls import CommitGrace, UnbatchedPoster
from ledgerd.ledger.application.verify_ledger import VerifyLedger
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.model import Account
from ledgerd.ledger.domain.posting import PostingSession, PostingSnapshot
from ledgerd.ledger.domain.requests import TransferRequest
from tests.fakes.ledger_app import LedgerApp, make_ledger_app
from tests.unit.ledger.application.scenario import (
    FUNDED,
    LEDGER,
    create_ledger,
    err,
    ok,
    open_account,
    pay,
)


class RecordingHandler(PostTransfersHandler):
    """The real handler, recording each group it posts and able to hold the next load."""

    def __init__(self, app: LedgerApp) -> None:
        super().__init__(
            uow=app.uow,
            ledgers=app.ledgers,
            accounts=app.accounts,
            transfers=app.transfers,
            journal=app.journal,
            events=app.events,
            clock=app.clock,
            new_id=app.ids,
        )
        self.groups: list[int] = []
        self.group_sizes: list[tuple[str, int]] = []  # each group's ledger and transfers
        self.gate: asyncio.Event | None = None  # set: loads wait for it
        self.loading = asyncio.Event()
        self.write_gate: asyncio.Event | None = None  # set: writes wait for it
        self.hold_writes_of: str | None = None  # ... only of groups writing this key
        self.writing = asyncio.Event()
        self.explode_on: str | None = None  # an idempotency key that breaks its group

    async def post_group(
        self,
        ledger_id: str,
        commands: Sequence[PostTransfers],
        *,
        callers: Callers = ALONE,
    ) -> list[Outcome | None]:
        self.groups.append(len(commands))
        self.group_sizes.append((ledger_id, sum(len(c.requests) for c in commands)))
        keys = {r.key for c in commands for r in c.requests if isinstance(r, TransferRequest)}
        if self.explode_on in keys:
            msg = "a fault no rule foresaw"
            raise RuntimeError(msg)
        return await super().post_group(ledger_id, commands, callers=callers)

    async def _write(self, session: PostingSession, snapshot: PostingSnapshot) -> None:
        keys = {transfer.idempotency_key for transfer in session.new_transfers}
        if self.hold_writes_of is None or self.hold_writes_of in keys:
            self.writing.set()
            if self.write_gate is not None:
                await self.write_gate.wait()
        await super()._write(session, snapshot)

    async def _load(self, ledger_id: str, commands: Sequence[PostTransfers]) -> PostingSnapshot:
        self.loading.set()
        if self.gate is not None:
            await self.gate.wait()
        return await super()._load(ledger_id, commands)


async def _books() -> LedgerApp:
    app = make_ledger_app()
    await create_ledger(app)
    await open_account(app, "bank")
    await open_account(app, "alice", flags=FUNDED)
    await open_account(app, "bob", flags=FUNDED)
    return app


@asynccontextmanager
async def batching(
    handler: PostTransfersHandler,
    **options: Any,  # noqa: ANN401 - BatchingOptions' fields, checked by its constructor
) -> AsyncIterator[PostingBatcher]:
    async with PostingBatcher(handler, BatchingOptions(**options)) as batcher:
        yield batcher


def one(key: str, debit: str, credit: str, amount: int) -> PostTransfers:
    return PostTransfers(LEDGER, [pay(key, (debit, credit, amount))])


async def _balance(app: LedgerApp, account: str) -> int:
    return (await app.queries.get_balance(LEDGER, account)).available


async def _verified(app: LedgerApp) -> bool:
    return (await app.verify_ledger(VerifyLedger(LEDGER))).ok


async def test_concurrent_calls_share_units_of_work_and_get_their_own_results() -> None:
    app = await _books()
    handler = RecordingHandler(app)
    handler.gate = asyncio.Event()
    async with batching(handler) as batcher:
        first = asyncio.create_task(batcher(one("first", "bank", "alice", 1)))
        await handler.loading.wait()  # the first batch is under way; the others queue up
        rest = [
            asyncio.create_task(batcher(one(f"pay-{n}", "bank", "alice", n))) for n in range(2, 52)
        ]
        await asyncio.sleep(0)
        handler.gate.set()
        outcomes = await asyncio.gather(first, *rest)
    for n, outcome in enumerate(outcomes, start=1):
        (result,) = outcome
        transfer = ok(result).transfer
        assert transfer.idempotency_key == ("first" if n == 1 else f"pay-{n}")
        assert transfer.legs[0].amount == n
    assert sum(handler.groups) == 51
    assert len(handler.groups) < 51, handler.groups  # batched, not one unit of work per call
    assert await _balance(app, "alice") == sum(range(1, 52))
    assert await _verified(app)


async def test_a_failing_transfer_does_not_fail_its_neighbours_nor_an_atomic_call_them() -> None:
    app = await _books()
    handler = RecordingHandler(app)
    handler.gate = asyncio.Event()
    async with batching(handler) as batcher:
        warmup = asyncio.create_task(batcher(one("fund", "bank", "alice", 100)))
        await handler.loading.wait()
        calls = [
            batcher(one("too-much", "alice", "bob", 1_000)),  # alice cannot pay that
            batcher(one("fine", "alice", "bob", 10)),
            batcher(
                PostTransfers(
                    LEDGER,
                    [pay("atomic-ok", ("alice", "bob", 5)), pay("atomic-bad", ("bob", "x", 1))],
                    atomic=True,
                )
            ),
            batcher(one("after", "alice", "bob", 20)),
        ]
        tasks = [asyncio.create_task(call) for call in calls]
        await asyncio.sleep(0)
        handler.gate.set()
        await warmup
        too_much, fine, atomic, after = await asyncio.gather(*tasks)
    assert max(handler.groups) > 1  # they really shared a unit of work
    assert isinstance(too_much[0], Err)
    assert too_much[0].error.code is LedgerErrorCode.INSUFFICIENT_FUNDS
    assert isinstance(fine[0], Ok)
    assert isinstance(after[0], Ok)
    assert [r.error.code for r in atomic if isinstance(r, Err)] == [
        LedgerErrorCode.BATCH_ABORTED,
        LedgerErrorCode.ACCOUNT_NOT_FOUND,
    ]
    assert await _balance(app, "bob") == 30  # 10 + 20: nothing of the atomic call stuck
    keys = {t.idempotency_key for t in app.tables.transfers.values()}
    assert not keys & {"atomic-ok", "atomic-bad", "too-much"}


async def test_the_same_key_twice_in_one_batch_is_one_transfer_and_a_replay() -> None:
    app = await _books()
    handler = RecordingHandler(app)
    handler.gate = asyncio.Event()
    async with batching(handler) as batcher:
        blocker = asyncio.create_task(batcher(one("blocker", "bank", "alice", 1)))
        await handler.loading.wait()
        tasks = [asyncio.create_task(batcher(one("twice", "bank", "bob", 7))) for _ in range(2)]
        conflicting = asyncio.create_task(batcher(one("twice", "bank", "bob", 8)))
        await asyncio.sleep(0)
        handler.gate.set()
        await blocker
        (a,), (b,) = await asyncio.gather(*tasks)
        (c,) = await conflicting
    assert ok(a).transfer == ok(b).transfer
    assert [ok(a).replayed, ok(b).replayed] == [False, True]
    assert isinstance(c, Err)
    assert c.error.code is LedgerErrorCode.IDEMPOTENCY_CONFLICT
    assert await _balance(app, "bob") == 7


async def test_a_full_queue_answers_overloaded_with_a_retry_hint() -> None:
    app = await _books()
    handler = RecordingHandler(app)
    handler.gate = asyncio.Event()
    async with batching(handler, queue_capacity=2, workers=1, retry_after_s=0.25) as batcher:
        running = asyncio.create_task(batcher(one("running", "bank", "alice", 1)))
        await handler.loading.wait()
        queued = [asyncio.create_task(batcher(one(f"q{n}", "bank", "alice", 1))) for n in (1, 2)]
        await asyncio.sleep(0)
        with pytest.raises(LedgerdError) as refused:
            await batcher(one("refused", "bank", "alice", 1))
        handler.gate.set()
        await asyncio.gather(running, *queued)
        # Once the queue has room again, calls are accepted again.
        (later,) = await batcher(one("later", "bank", "alice", 1))
    assert refused.value.code is ErrorCode.OVERLOADED
    assert refused.value.details == {"retry_after_seconds": "0.25"}
    assert isinstance(later, Ok)
    keys = {t.idempotency_key for t in app.tables.transfers.values()}
    assert "refused" not in keys
    assert await _balance(app, "alice") == 4


async def test_a_caller_who_gives_up_before_the_writes_leaves_nothing_behind() -> None:
    app = await _books()
    handler = RecordingHandler(app)
    handler.gate = asyncio.Event()
    async with batching(handler, workers=1) as batcher:
        stays = asyncio.create_task(batcher(one("stays", "bank", "alice", 3)))
        leaves = asyncio.create_task(batcher(one("leaves", "bank", "alice", 5)))
        await handler.loading.wait()  # both are in the batch being loaded
        leaves.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaves
        handler.gate.set()
        (kept,) = await stays
    assert handler.groups == [2]
    assert isinstance(kept, Ok)
    assert await _balance(app, "alice") == 3
    keys = {t.idempotency_key for t in app.tables.transfers.values()}
    assert "leaves" not in keys
    assert await _verified(app)


async def test_a_caller_who_gives_up_while_queued_is_never_posted() -> None:
    app = await _books()
    handler = RecordingHandler(app)
    handler.gate = asyncio.Event()
    async with batching(handler, workers=1) as batcher:
        first = asyncio.create_task(batcher(one("first", "bank", "alice", 1)))
        await handler.loading.wait()
        queued = asyncio.create_task(batcher(one("queued", "bank", "alice", 2)))
        await asyncio.sleep(0)
        queued.cancel()
        handler.gate.set()
        await first
        (after,) = await batcher(one("after", "bank", "alice", 4))
    assert isinstance(after, Ok)
    assert await _balance(app, "alice") == 5
    assert sum(handler.groups) == 2  # "queued" never reached a unit of work


async def test_a_group_that_breaks_unexpectedly_is_posted_call_by_call() -> None:
    app = await _books()
    handler = RecordingHandler(app)
    handler.gate = asyncio.Event()
    handler.explode_on = "culprit"
    async with batching(handler) as batcher:
        first = asyncio.create_task(batcher(one("first", "bank", "alice", 1)))
        await handler.loading.wait()
        tasks = [
            asyncio.create_task(batcher(one(key, "bank", "alice", 2)))
            for key in ("a", "culprit", "b")
        ]
        await asyncio.sleep(0)
        handler.gate.set()
        await first
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[1], RuntimeError)
    assert [isinstance(r, list) and isinstance(r[0], Ok) for r in results] == [True, False, True]
    assert await _balance(app, "alice") == 5


async def test_closing_finishes_every_accepted_call_then_posts_directly() -> None:
    app = await _books()
    handler = RecordingHandler(app)
    batcher = PostingBatcher(handler, BatchingOptions())
    async with batcher:
        tasks = [asyncio.create_task(batcher(one(f"c{n}", "bank", "alice", 1))) for n in range(20)]
        await asyncio.sleep(0)
    # Leaving the block closed the batcher: every accepted call was still answered.
    assert all(isinstance(outcome[0], Ok) for outcome in await asyncio.gather(*tasks))
    (late,) = await batcher(one("late", "bank", "alice", 1))
    assert isinstance(late, Ok)
    assert await _balance(app, "alice") == 21


async def test_calls_stranded_by_a_stopped_dispatcher_fail_instead_of_waiting_forever() -> None:
    app = await _books()
    handler = RecordingHandler(app)
    handler.gate = asyncio.Event()
    async with batching(handler, workers=1) as batcher:
        in_flight = asyncio.create_task(batcher(one("in-flight", "bank", "alice", 1)))
        await handler.loading.wait()
        queued = asyncio.create_task(batcher(one("queued", "bank", "alice", 2)))
        await asyncio.sleep(0)
        dispatcher = batcher._dispatcher
        assert dispatcher is not None
        dispatcher.cancel()  # the dispatcher dies, as only a bug or a hard stop would make it
        results = await asyncio.gather(in_flight, queued, return_exceptions=True)
        handler.gate.set()
        # New calls do not queue behind a dead dispatcher: they are posted directly.
        (after,) = await batcher(one("after", "bank", "alice", 4))
    # Neither had begun to be written: a definite, retryable failure, and nothing written.
    assert [r.code for r in results if isinstance(r, LedgerdError)] == [ErrorCode.UNAVAILABLE] * 2
    assert isinstance(after, Ok)
    assert await _balance(app, "alice") == 4
    assert await _verified(app)


async def test_a_bad_command_is_refused_before_it_is_queued() -> None:
    app = await _books()
    async with batching(RecordingHandler(app)) as batcher:
        with pytest.raises(LedgerdError) as empty:
            await batcher(PostTransfers(LEDGER, []))
        with pytest.raises(LedgerdError) as bad_id:
            await batcher(PostTransfers("not a ledger id!", [pay("k", ("bank", "alice", 1))]))
        with pytest.raises(LedgerdError) as no_ledger:
            await batcher(PostTransfers("nowhere", [pay("k", ("bank", "alice", 1))]))
    assert empty.value.code is ErrorCode.VALIDATION_FAILED
    assert bad_id.value.code is ErrorCode.VALIDATION_FAILED
    assert no_ledger.value.code is LedgerErrorCode.LEDGER_NOT_FOUND


# --- once a group writes, its callers get the commit's outcome -------------------------------

# A caller's deadline, and how long the tests wait for it to have passed (a timer fires once
# its time has come, so waiting longer makes it certain, not slow).
HURRIED_S = 0.05
PASSED_S = 0.25


async def _hurried(poster: TransferPoster, key: str) -> Outcome:
    """A call with a short deadline, as a transport would make it."""
    async with deadline_scope(HURRIED_S):
        return await poster(one(key, "bank", "alice", 3))


async def _in_one_group_while_held(
    handler: RecordingHandler, batcher: PostingBatcher
) -> tuple[asyncio.Task[Outcome], asyncio.Task[Outcome]]:
    """A hurried and a patient call, gathered into one group whose writes are held."""
    handler.gate = asyncio.Event()
    blocker = asyncio.create_task(batcher(one("blocker", "bank", "alice", 1)))
    await handler.loading.wait()
    hurried = asyncio.create_task(_hurried(batcher, "hurried"))
    patient = asyncio.create_task(batcher(one("patient", "bank", "alice", 4)))
    await asyncio.sleep(0)
    handler.hold_writes_of, handler.write_gate = "patient", asyncio.Event()
    handler.gate.set()
    await blocker
    await handler.writing.wait()
    await asyncio.sleep(PASSED_S)  # the hurried caller's deadline passes during the writes
    return hurried, patient


async def test_a_caller_whose_transfers_are_being_written_gets_the_commits_outcome() -> None:
    app = await _books()
    handler = RecordingHandler(app)
    async with batching(handler, workers=1) as batcher:
        hurried, patient = await _in_one_group_while_held(handler, batcher)
        assert not hurried.done()  # bound to the group: it waits for the commit
        handler.write_gate.set()  # type: ignore[union-attr]
        (got,), (_,) = await asyncio.gather(hurried, patient)
    # Not DEADLINE_EXCEEDED for a transfer that was committed: the outcome itself.
    assert ok(got).transfer.idempotency_key == "hurried"
    assert not ok(got).replayed
    assert handler.groups == [1, 2]
    assert await _balance(app, "alice") == 8


async def test_a_commit_slower_than_the_grace_is_an_unknown_outcome_never_a_failure() -> None:
    app = await _books()
    handler = RecordingHandler(app)
    async with batching(handler, workers=1, grace=CommitGrace(0.05)) as batcher:
        hurried, patient = await _in_one_group_while_held(handler, batcher)
        with pytest.raises(OutcomeUnknownError) as unknown:
            await hurried
        handler.write_gate.set()  # type: ignore[union-attr]
        await patient
        # The client does what the answer says: the same key again, and learns the outcome.
        (again,) = await batcher(one("hurried", "bank", "alice", 3))
    assert unknown.value.code is ErrorCode.OUTCOME_UNKNOWN
    assert unknown.value.details == {"retry_after_seconds": "1"}
    assert ok(again).replayed  # it had been committed: "unknown" was the honest answer
    assert await _balance(app, "alice") == 8


async def test_unbatched_calls_keep_the_same_rule() -> None:
    app = await _books()
    handler = RecordingHandler(app)
    handler.write_gate = asyncio.Event()
    poster = UnbatchedPoster(handler, CommitGrace())
    hurried = asyncio.create_task(_hurried(poster, "alone"))
    await handler.writing.wait()
    await asyncio.sleep(PASSED_S)
    assert not hurried.done()
    handler.write_gate.set()
    (got,) = await hurried
    assert ok(got).transfer.idempotency_key == "alone"
    assert await _balance(app, "alice") == 3


async def test_an_unbatched_caller_who_leaves_before_the_writes_leaves_nothing() -> None:
    app = await _books()
    handler = RecordingHandler(app)
    handler.gate = asyncio.Event()
    poster = UnbatchedPoster(handler, CommitGrace())
    hurried = asyncio.create_task(_hurried(poster, "alone"))
    await handler.loading.wait()
    with pytest.raises(LedgerdError) as exceeded:
        await hurried  # its deadline passes while its group waits for its lock
    handler.gate.set()
    await asyncio.sleep(0)
    assert exceeded.value.code is ErrorCode.DEADLINE_EXCEEDED
    assert await _balance(app, "alice") == 0
    assert not app.tables.transfers


async def test_a_hard_stop_while_writing_answers_outcome_unknown_and_the_commit_stands() -> None:
    app = await _books()
    handler = RecordingHandler(app)
    handler.write_gate = asyncio.Event()
    async with batching(handler, workers=1) as batcher:
        writing = asyncio.create_task(batcher(one("writing", "bank", "alice", 5)))
        await handler.writing.wait()
        dispatcher = batcher._dispatcher
        assert dispatcher is not None
        dispatcher.cancel()
        with pytest.raises(OutcomeUnknownError):
            await writing
        handler.write_gate.set()
        (again,) = await batcher(one("writing", "bank", "alice", 5))
    assert ok(again).replayed
    assert await _balance(app, "alice") == 5


# --- fairness: big calls in parts, ledgers in turn ------------------------------------------


def _many(prefix: str, count: int, amount: int = 1) -> PostTransfers:
    return PostTransfers(
        LEDGER, [pay(f"{prefix}-{n}", ("bank", "alice", amount)) for n in range(count)]
    )


async def test_a_big_call_is_posted_in_parts_in_order_with_other_callers_in_between() -> None:
    app = await _books()
    handler = RecordingHandler(app)
    handler.gate = asyncio.Event()
    async with batching(handler, group_transfers=5, workers=1) as batcher:
        blocker = asyncio.create_task(batcher(one("blocker", "bank", "alice", 1)))
        await handler.loading.wait()
        big = asyncio.create_task(batcher(_many("big", 23)))
        await asyncio.sleep(0)
        others = [asyncio.create_task(batcher(one(f"o{n}", "bank", "bob", 1))) for n in range(3)]
        await asyncio.sleep(0)
        handler.gate.set()
        await blocker
        outcome = await big
        await asyncio.gather(*others)
    sequences = [ok(result).transfer.sequence for result in outcome]
    assert [ok(r).transfer.idempotency_key for r in outcome] == [f"big-{n}" for n in range(23)]
    assert sequences == sorted(sequences)  # the call's order is the chain's
    assert max(size for _, size in handler.group_sizes) <= 5
    other_sequences = {
        t.sequence for t in app.tables.transfers.values() if t.idempotency_key[0] == "o"
    }
    assert any(sequences[0] < other < sequences[-1] for other in other_sequences)
    assert await _verified(app)


async def test_a_later_part_may_spend_what_an_earlier_part_paid_in() -> None:
    app = await _books()
    requests = [pay("fund", ("bank", "alice", 10))]
    requests += [pay(f"fill-{n}", ("bank", "bob", 1)) for n in range(5)]
    requests += [pay("spend", ("alice", "bob", 10))]  # alice must be funded first
    handler = RecordingHandler(app)
    async with batching(handler, group_transfers=3) as batcher:
        outcome = await batcher(PostTransfers(LEDGER, requests))
    assert all(isinstance(result, Ok) for result in outcome), outcome
    assert len(handler.group_sizes) == 3
    assert await _balance(app, "alice") == 0


async def test_an_atomic_call_is_never_split() -> None:
    app = await _books()
    handler = RecordingHandler(app)
    async with batching(handler, group_transfers=5) as batcher:
        outcome = await batcher(dataclasses.replace(_many("atomic", 12), atomic=True))
    assert all(isinstance(result, Ok) for result in outcome)
    assert handler.group_sizes == [(LEDGER, 12)]


async def test_a_caller_who_leaves_while_a_part_is_written_gets_it_and_no_more() -> None:
    app = await _books()
    handler = RecordingHandler(app)
    handler.write_gate = asyncio.Event()
    handler.hold_writes_of = "big-4"  # the second part
    async with batching(handler, group_transfers=4) as batcher:

        async def hurried() -> Outcome:
            async with deadline_scope(HURRIED_S):
                return await batcher(_many("big", 10))

        call = asyncio.create_task(hurried())
        await handler.writing.wait()
        await asyncio.sleep(PASSED_S)
        handler.write_gate.set()
        outcome = await call
    assert [isinstance(result, Ok) for result in outcome] == [True] * 8 + [False] * 2
    assert {err(result).code for result in outcome[8:]} == {ErrorCode.DEADLINE_EXCEEDED}
    keys = {t.idempotency_key for t in app.tables.transfers.values()}
    assert keys == {f"big-{n}" for n in range(8)}  # the third part was never written
    assert await _balance(app, "alice") == 8


async def test_closing_in_the_middle_of_a_call_in_parts_still_posts_all_of_it() -> None:
    app = await _books()
    handler = RecordingHandler(app)
    handler.write_gate = asyncio.Event()
    batcher = PostingBatcher(handler, BatchingOptions(group_transfers=2))
    async with batcher:
        call = asyncio.create_task(batcher(_many("big", 6)))
        await handler.writing.wait()  # the first part is being written
        closing = asyncio.create_task(batcher.aclose())
        await asyncio.sleep(0)
        handler.write_gate.set()
        outcome = await call
        await closing
    sequences = [ok(result).transfer.sequence for result in outcome]
    assert sequences == sorted(sequences)
    assert len(sequences) == 6
    assert await _balance(app, "alice") == 6


async def test_a_ledger_with_a_backlog_does_not_hold_up_another() -> None:
    app = await _books()
    await create_ledger(app, "B")
    await open_account(app, "bank", ledger_id="B")
    await open_account(app, "carol", ledger_id="B")
    handler = RecordingHandler(app)
    handler.gate = asyncio.Event()
    async with batching(handler, group_transfers=5, workers=2) as batcher:
        backlog = [asyncio.create_task(batcher(_many(f"a{n}", 20))) for n in range(4)]
        await handler.loading.wait()
        small = asyncio.create_task(batcher(PostTransfers("B", [pay("b", ("bank", "carol", 1))])))
        await asyncio.sleep(0)
        handler.gate.set()
        await small
        posted_before_b = handler.group_sizes.index(("B", 1))
        await asyncio.gather(*backlog)
    # B's group went out after at most the groups already taken when it came, not after the
    # 80 transfers (16 groups) queued ahead of it on the other ledger.
    assert posted_before_b <= 2, handler.group_sizes
    assert len(handler.group_sizes) == 17


# --- batched and unbatched posting of the same workload end the same -----------------------

ACCOUNTS = ("bank", "alice", "bob", "carol")
_leg = st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(ACCOUNTS), st.integers(1, 60))
_request = st.one_of(
    st.lists(_leg, min_size=1, max_size=3).map(tuple),
    st.just("malformed"),
)
_command = st.tuples(st.lists(_request, min_size=1, max_size=4), st.booleans(), st.integers(0, 9))


def _commands(drawn: list[tuple[list[object], bool, int]]) -> list[PostTransfers]:
    commands = []
    for number, (requests, atomic, key) in enumerate(drawn):
        items: list[TransferRequest | Malformed] = []
        for index, request in enumerate(requests):
            if request == "malformed":
                items.append(Malformed(LedgerdError(ErrorCode.VALIDATION_FAILED, "bad")))
            else:
                # Keys repeat across commands now and then: replays and conflicts included.
                legs = request if isinstance(request, tuple) else ()
                items.append(pay(f"k{key}-{index}" if number % 3 else f"u{number}-{index}", *legs))
        commands.append(PostTransfers(LEDGER, items, atomic=atomic))
    return commands


def _unversioned(app: LedgerApp) -> dict[tuple[str, str], Account]:
    return {key: dataclasses.replace(a, version=0) for key, a in app.tables.accounts.items()}


async def _fresh_books() -> LedgerApp:
    app = await _books()
    await open_account(app, "carol", flags=FUNDED)
    return app


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=st.lists(_command, min_size=1, max_size=25), max_batch=st.integers(1, 8))
def test_batched_and_unbatched_posting_end_in_identical_books(
    drawn: list[tuple[list[object], bool, int]], max_batch: int
) -> None:
    commands = _commands(drawn)

    async def run() -> None:
        alone = await _fresh_books()
        expected = [await alone.post_transfers(command) for command in commands]

        together = await _fresh_books()
        handler = RecordingHandler(together)
        async with batching(handler, max_batch=max_batch) as batcher:
            # Submitted in order from tasks started in order: the queue keeps that order.
            tasks = [asyncio.create_task(batcher(command)) for command in commands]
            got = await asyncio.gather(*tasks)
        assert got == expected
        # Versions count units of work, which batching makes fewer; everything else is equal.
        assert _unversioned(together) == _unversioned(alone)
        assert together.tables.transfers == alone.tables.transfers
        assert together.tables.entries == alone.tables.entries
        assert await _verified(together)

    asyncio.run(run())
