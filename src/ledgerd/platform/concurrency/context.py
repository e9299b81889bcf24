"""Go's ``context.Context`` for asyncio: a cancellation tree with deadlines, found by contextvar.

A ``Context`` is cancelled explicitly (``cancel``), when its deadline passes, or when its
parent is; cancelling one cancels all its descendants, never its ancestors. Work *observes*
a context in one of two ways:

* ``async with ctx.scope():`` makes ``ctx`` the ``current()`` context of the block and ties
  the block's task to it: when ``ctx`` is cancelled, the task is cancelled at its next
  await and the block ends with ``ContextCancelledError`` (or ``DeadlineExceededError``
  when a deadline did it). The deadline is also installed with
  ``ledgerd.kernel.deadline.deadline_scope``, so ``deadline.remaining()`` - what the
  database layer turns into statement timeouts - sees it inside the block and in every task
  started from it.
* ``await ctx.done`` / ``ctx.err`` / ``ctx.check()`` for code that polls or waits, as in Go.

The kernel's deadline is the one record of the deadline in force: a context derived while one
is in force (a transport's request deadline, or an enclosing scope's) takes it if it is earlier
than its own, so no context outlives the request it was derived in.

Unlike Go, child contexts need no ``defer cancel()`` to avoid leaking: a parent holds its
children weakly, and a scope removes its hook from the context when it exits. Cancelling a
context whose deadline is no longer needed still frees its timer early.

Tasks started inside a scope inherit ``current()`` (contextvars are copied) but are not
cancelled by the scope unless they belong to a ``TaskGroup`` inside it (the group cancels
its children when the block's task is cancelled) or enter ``current().scope()`` themselves.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Generator
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

from ledgerd.kernel.deadline import DeadlineExceededError, deadline_at, deadline_scope


class ContextCancelledError(Exception):
    """The context a block ran under was cancelled (not by a deadline)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"context cancelled: {reason}")
        self.reason = reason


class Context:
    """A node of the cancellation tree; build one from ``Context.background()`` or ``current()``."""

    __slots__ = (
        "__weakref__",
        "_children",
        "_deadline",
        "_expired",
        "_hooks",
        "_parent",
        "_reason",
        "_timer",
        "_waiters",
    )

    def __init__(self, parent: Context | None, deadline: float | None) -> None:
        """Use ``background()``, ``with_cancel()`` or ``with_deadline()`` instead."""
        self._parent = parent
        self._deadline = deadline  # time.monotonic() seconds, as ledgerd.kernel.deadline uses
        self._reason: str | None = None  # set once cancelled
        self._expired = False  # cancelled by a deadline (its own or an ancestor's)
        self._children: weakref.WeakSet[Context] = weakref.WeakSet()
        self._hooks: dict[object, Callable[[], None]] = {}  # scopes to cancel, by scope
        self._waiters: list[asyncio.Future[None]] = []  # tasks awaiting ``done``
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def background(cls) -> Context:
        """The root: never cancelled, no deadline; what ``current()`` is outside any scope."""
        return _BACKGROUND

    # --- deriving -------------------------------------------------------------------------------

    def with_cancel(self) -> Context:
        """A child cancelled by its own ``cancel()``, with this context, or by a deadline.

        Its deadline is this context's, or the kernel's deadline in force if that is earlier.
        """
        return self._child(self._deadline)

    def with_deadline(self, seconds: float | None) -> Context:
        """A child that is also cancelled ``seconds`` from now (an earlier deadline here wins).

        ``None`` adds no deadline of its own, as in ``deadline_scope``. A request deadline in
        force (the kernel's) applies too, as in ``with_cancel``. Must be called with an event
        loop running: the deadline is a timer on it.
        """
        if seconds is None:
            return self.with_cancel()
        candidate = time.monotonic() + max(0.0, seconds)
        if self._deadline is not None and self._deadline <= candidate:
            return self._child(self._deadline)  # ours comes first and cancels the child anyway
        return self._child(candidate, timer=True)

    def _child(self, deadline: float | None, *, timer: bool = False) -> Context:
        in_force = deadline_at()  # the kernel's, set by a transport or an enclosing scope
        if in_force is not None and (deadline is None or in_force < deadline):
            deadline, timer = in_force, True
        child = Context(self, deadline)
        if self._reason is not None:
            child._cancel(self._reason, expired=self._expired)
            return child
        if self is not _BACKGROUND:  # the root is never cancelled: no need to track children
            self._children.add(child)
        if timer and deadline is not None:
            delay = max(0.0, deadline - time.monotonic())
            child._timer = asyncio.get_running_loop().call_later(delay, child._expire)
        return child

    def _expire(self) -> None:
        self._timer = None
        self._cancel("deadline exceeded", expired=True)

    # --- cancelling -----------------------------------------------------------------------------

    def cancel(self, reason: str = "cancelled") -> None:
        """Cancel this context and its descendants; idempotent (the first reason stays)."""
        if self is _BACKGROUND:
            msg = "the background context cannot be cancelled; derive one with with_cancel()"
            raise RuntimeError(msg)
        self._cancel(reason, expired=False)

    def _cancel(self, reason: str, *, expired: bool) -> None:
        if self._reason is not None:
            return
        self._reason = reason
        self._expired = expired
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._parent is not None:
            self._parent._children.discard(self)  # noqa: SLF001 - the tree links are private to Context
        hooks, self._hooks = self._hooks, {}
        for hook in hooks.values():
            hook()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        for child in list(self._children):
            child._cancel(reason, expired=expired)  # noqa: SLF001 - the tree links are private to Context
        self._children.clear()

    # --- observing ------------------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        return self._reason is not None

    @property
    def err(self) -> ContextCancelledError | DeadlineExceededError | None:
        """Why the context is done (a new exception each time), or None while it is not."""
        if self._reason is None:
            return None
        if self._expired:
            return DeadlineExceededError()
        return ContextCancelledError(self._reason)

    def check(self) -> None:
        """Raise ``err`` if the context is done: Go's ``if err := ctx.Err(); err != nil``."""
        error = self.err
        if error is not None:
            raise error

    @property
    def deadline(self) -> float | None:
        """When the context expires, in ``time.monotonic()`` seconds, or None."""
        return self._deadline

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or None without one."""
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    @property
    def done(self) -> Done:
        """Awaitable that completes when the context is cancelled: ``await ctx.done``."""
        return Done(self)

    async def _wait(self) -> None:
        if self._reason is not None:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done():
                waiter.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    # --- running work under it ------------------------------------------------------------------

    def scope(self) -> Scope:
        """``async with ctx.scope():`` - run the block as this context's work (module doc)."""
        return Scope(self)

    def __repr__(self) -> str:
        if self is _BACKGROUND:
            return "<Context background>"
        state = "active" if self._reason is None else f"done: {self._reason}"
        left = self.remaining()
        return f"<Context {state}" + ("" if left is None else f" {left:.3f}s left") + ">"


class Done:
    """What ``Context.done`` returns: awaiting it waits for the context's cancellation."""

    __slots__ = ("_context",)

    def __init__(self, context: Context) -> None:
        self._context = context

    def is_set(self) -> bool:
        return self._context.cancelled

    async def wait(self) -> None:
        await self._context._wait()  # noqa: SLF001 - the two classes are one unit

    def __await__(self) -> Generator[Any, None, None]:
        return self.wait().__await__()


class Scope:
    """The async context manager ``Context.scope()`` returns; enter it once."""

    __slots__ = ("_cancelling", "_context", "_deadline", "_fired", "_task", "_token")

    def __init__(self, context: Context) -> None:
        self._context = context
        self._fired = False
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0
        self._token: Token[Context] | None = None
        self._deadline: AbstractAsyncContextManager[None] | None = None

    async def __aenter__(self) -> Context:
        context = self._context
        context.check()  # already done: do not start the work at all
        task = asyncio.current_task()
        if task is None or self._task is not None:
            msg = "a context scope is entered once, inside a task"
            raise RuntimeError(msg)
        self._task = task
        # As asyncio.timeout does: count the cancellations already requested, so that on exit
        # our own request can be told from anybody else's.
        self._cancelling = task.cancelling()
        self._token = _current.set(context)
        if context is not _BACKGROUND:  # never cancelled: nothing to hook
            context._hooks[self] = self._fire  # noqa: SLF001 - the two classes are one unit
        # The kernel's deadline scope makes the deadline visible to deadline.remaining() (and so
        # to the database) here and in every task started from the block.
        self._deadline = deadline_scope(context.remaining())
        try:
            await self._deadline.__aenter__()
        except BaseException:
            self._leave()
            raise
        return context

    def _fire(self) -> None:
        """Hook run by ``Context._cancel``: cancel the block's task (once)."""
        if self._task is not None and not self._fired:
            self._fired = True
            self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        deadline, self._deadline = self._deadline, None
        try:
            if deadline is not None:
                # When the kernel's timer alone cancelled the block, this raises
                # DeadlineExceededError in place of the CancelledError.
                await deadline.__aexit__(exc_type, exc, traceback)
        except BaseException as replaced:
            self._leave()
            if self._fired:
                await self._settle(replaced)
            raise
        self._leave()
        if self._fired:
            await self._settle(exc)

    async def _settle(self, exc: BaseException | None) -> None:
        """After ``_fire``: withdraw our cancellation, and report it as the context's error."""
        task, error = self._task, self._context.err
        assert task is not None  # noqa: S101 - set on entry; _fire needs it
        assert error is not None  # noqa: S101 - _fire runs only once the context is cancelled
        others_cancel = task.uncancel() > self._cancelling
        if isinstance(exc, asyncio.CancelledError):
            if others_cancel:
                return  # someone else cancelled the task as well: theirs propagates
            raise error from exc
        # The block ended before reaching another await, or swallowed the CancelledError: our
        # request may still be pending on the task. Absorb it here, or it would surface at
        # some unrelated await after the block.
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            if task.cancelling() > self._cancelling:
                raise  # a new request from someone else

    def _leave(self) -> None:
        self._context._hooks.pop(self, None)  # noqa: SLF001 - the two classes are one unit
        if self._token is not None:
            _current.reset(self._token)
            self._token = None


_BACKGROUND = Context(None, None)
_current: ContextVar[Context] = ContextVar("ledgerd_context", default=_BACKGROUND)


def current() -> Context:
    """The context of the innermost ``scope()`` around the caller, or the background one."""
    return _current.get()
