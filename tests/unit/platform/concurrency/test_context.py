"""Contexts: cancellation flows down the tree, scopes stop their work, deadlines reach the DB."""

import asyncio
import gc
import weakref

import pytest

from ledgerd.kernel import deadline
from ledgerd.kernel.deadline import DeadlineExceededError
from ledgerd.platform.concurrency import Context, ContextCancelledError, current
from tests.unit.platform.concurrency.support import settle


async def never() -> None:
    await asyncio.Event().wait()  # only a cancellation ends this


async def test_the_background_context_is_current_outside_any_scope_and_never_ends() -> None:
    background = Context.background()
    assert current() is background
    assert background.err is None
    assert background.remaining() is None
    assert not background.done.is_set()
    with pytest.raises(RuntimeError, match="background"):
        background.cancel()


async def test_cancel_records_the_first_reason_and_completes_done() -> None:
    context = Context.background().with_cancel()
    waiting = asyncio.create_task(context.done.wait())
    await settle()
    assert not waiting.done()
    context.cancel("shutting down")
    context.cancel("again")  # idempotent: the first reason stays
    await waiting
    await context.done  # awaiting the property itself works too, and returns at once now
    error = context.err
    assert isinstance(error, ContextCancelledError)
    assert error.reason == "shutting down"
    with pytest.raises(ContextCancelledError):
        context.check()


async def test_cancelling_a_context_cancels_its_descendants_but_not_its_parent() -> None:
    parent = Context.background().with_cancel()
    child = parent.with_cancel()
    grandchild = child.with_deadline(30)
    sibling = parent.with_cancel()
    child.cancel("child only")
    assert [parent.cancelled, sibling.cancelled, grandchild.cancelled] == [False, False, True]
    assert isinstance(grandchild.err, ContextCancelledError)
    parent.cancel("all")
    assert isinstance(sibling.err, ContextCancelledError)
    assert sibling.done.is_set()


async def test_a_child_of_a_cancelled_context_is_born_cancelled() -> None:
    parent = Context.background().with_cancel()
    parent.cancel("gone")
    child = parent.with_deadline(10)
    assert isinstance(child.err, ContextCancelledError)
    assert child.err.reason == "gone"


async def test_a_deadline_cancels_the_context_and_its_children_with_deadline_exceeded() -> None:
    context = Context.background().with_deadline(0.01)
    child = context.with_cancel()
    await context.done
    assert isinstance(context.err, DeadlineExceededError)
    assert isinstance(child.err, DeadlineExceededError)


async def test_the_earlier_deadline_wins_and_a_child_never_extends_its_parent() -> None:
    parent = Context.background().with_deadline(5)
    longer = parent.with_deadline(60)
    shorter = parent.with_deadline(1)
    assert longer.deadline == parent.deadline
    assert parent.deadline is not None
    assert shorter.deadline is not None
    assert shorter.deadline < parent.deadline
    left = shorter.remaining()
    assert left is not None
    assert left <= 1
    shorter.cancel()
    assert parent.err is None
    parent.cancel()
    longer.cancel()


async def test_a_context_derived_under_a_request_deadline_takes_it() -> None:
    assert Context.background().with_deadline(None).deadline is None
    async with deadline.deadline_scope(5):
        in_force = deadline.deadline_at()
        plain = current().with_cancel()
        longer = current().with_deadline(60)
        shorter = current().with_deadline(1)
    assert in_force is not None
    assert plain.deadline == in_force
    assert longer.deadline == in_force
    assert shorter.deadline is not None
    assert shorter.deadline < in_force
    for context in (plain, longer, shorter):
        context.cancel()


async def test_a_context_derived_under_a_request_deadline_expires_with_it() -> None:
    with deadline.deadline_known(0.01):  # known, not enforced: only the context can expire
        context = current().with_cancel()
    await context.done
    assert isinstance(context.err, DeadlineExceededError)


async def test_a_scope_makes_the_context_current_for_the_block_and_its_tasks() -> None:
    context = Context.background().with_cancel()
    async with context.scope() as entered:
        assert entered is context
        assert current() is context
        seen_by_task = await asyncio.create_task(asyncio.sleep(0, result=current()))
        assert seen_by_task is context
    assert current() is Context.background()


async def test_cancelling_the_context_stops_the_block_with_a_clear_error() -> None:
    context = Context.background().with_cancel()
    reached_end = False

    async def work() -> None:
        nonlocal reached_end
        async with context.scope():
            await never()
            reached_end = True

    running = asyncio.create_task(work())
    await settle()
    context.cancel("client went away")
    with pytest.raises(ContextCancelledError, match="client went away"):
        await running
    assert not reached_end


async def test_after_the_scope_the_task_is_not_cancelled_any_more() -> None:
    context = Context.background().with_cancel()

    async def stop_itself() -> None:
        async with context.scope():
            context.cancel("stop")
            await asyncio.sleep(0)

    with pytest.raises(ContextCancelledError):
        await stop_itself()
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    await asyncio.sleep(0)  # nothing pending on the task


async def test_a_block_that_ends_before_its_next_await_leaves_no_cancellation_pending() -> None:
    context = Context.background().with_cancel()
    async with context.scope():
        context.cancel("too late to matter")  # the block ends without awaiting again
    # Without absorbing the request, this unrelated await would raise CancelledError.
    await asyncio.sleep(0)
    assert isinstance(context.err, ContextCancelledError)


async def test_cancelling_a_parent_stops_a_block_running_under_a_child() -> None:
    parent = Context.background().with_cancel()
    child = parent.with_cancel()

    async def work() -> None:
        async with child.scope():
            await never()

    running = asyncio.create_task(work())
    await settle()
    parent.cancel("parent done")
    with pytest.raises(ContextCancelledError, match="parent done"):
        await running


async def test_tasks_of_a_task_group_inside_the_scope_are_cancelled_too() -> None:
    context = Context.background().with_cancel()
    stopped: list[str] = []

    async def child(name: str) -> None:
        try:
            await never()
        except asyncio.CancelledError:
            stopped.append(name)
            raise

    async def work() -> None:
        async with context.scope(), asyncio.TaskGroup() as group:
            group.create_task(child("a"))
            group.create_task(child("b"))
            await never()

    running = asyncio.create_task(work())
    await settle()
    context.cancel()
    with pytest.raises(ContextCancelledError):
        await running
    assert sorted(stopped) == ["a", "b"]


async def test_a_scope_of_a_cancelled_context_does_not_start_the_block() -> None:
    context = Context.background().with_cancel()
    context.cancel("already")
    ran = False
    with pytest.raises(ContextCancelledError):
        async with context.scope():
            ran = True
    assert not ran
    assert current() is Context.background()


async def test_a_deadline_stops_the_block_with_deadline_exceeded() -> None:
    context = Context.background().with_deadline(0.02)
    with pytest.raises(DeadlineExceededError):
        async with context.scope():
            await never()
    assert isinstance(context.err, DeadlineExceededError)


async def test_a_parent_deadline_stops_a_block_under_a_child_with_deadline_exceeded() -> None:
    parent = Context.background().with_deadline(0.02)
    child = parent.with_cancel()
    with pytest.raises(DeadlineExceededError):
        async with child.scope():
            await never()


async def test_the_scope_deadline_is_what_the_database_layer_sees() -> None:
    context = Context.background().with_deadline(30)
    assert deadline.remaining() is None
    async with context.scope():
        left = deadline.remaining()
        in_task = await asyncio.create_task(asyncio.sleep(0, result=deadline.remaining()))
    ctx_left = context.remaining()
    assert left is not None
    assert in_task is not None
    assert ctx_left is not None
    assert ctx_left <= left <= 30
    assert in_task <= left
    assert deadline.remaining() is None
    context.cancel()


async def test_an_enclosing_request_deadline_still_applies_inside_a_longer_context() -> None:
    context = Context.background().with_deadline(60)
    async with deadline.deadline_scope(1), context.scope():
        left = deadline.remaining()
        assert left is not None
        assert left <= 1
    context.cancel()


async def test_someone_elses_cancellation_passes_through_unchanged() -> None:
    context = Context.background().with_cancel()

    async def work() -> None:
        async with context.scope():
            await never()

    running = asyncio.create_task(work())
    await settle()
    running.cancel()  # not the context: the scope must not turn this into its own error
    with pytest.raises(asyncio.CancelledError):
        await running
    assert context.err is None


async def test_scopes_and_children_leave_nothing_behind() -> None:
    parent = Context.background().with_cancel()
    async with parent.scope():
        pass
    assert parent._hooks == {}

    child = parent.with_cancel()
    child.cancel()
    assert child not in parent._children  # a cancelled child unhooks itself

    forgotten = parent.with_deadline(30)
    forgotten.cancel()  # frees its timer; without cancel() the timer would hold it until then
    assert forgotten._timer is None
    unused = weakref.ref(parent.with_cancel())
    gc.collect()
    assert unused() is None  # parents hold children weakly: no Go-style leak without cancel()
    assert len(parent._children) == 0


async def test_a_cancelled_waiter_on_done_is_forgotten() -> None:
    context = Context.background().with_cancel()
    waiting = asyncio.create_task(context.done.wait())
    await settle()
    assert len(context._waiters) == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert context._waiters == []
