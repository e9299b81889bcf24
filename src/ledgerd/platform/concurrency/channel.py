"""Bounded, closable, typed channels: Go's ``chan T`` with asyncio's cancellation rules.

A channel is a FIFO buffer of ``capacity`` items shared by any number of senders and
receivers. What makes it more than ``asyncio.Queue`` is what it promises when things stop:

* **Backpressure.** ``send`` waits while the buffer is full; ``try_send`` never waits and
  says False instead.
* **Close.** ``close()`` is the one moment after which nothing is accepted: every ``send``
  that returned happened before it, every later one (and every one still waiting) raises
  ``ChannelClosedError``. Items already accepted are never discarded: receivers drain them,
  and only then does ``receive`` raise ``ChannelClosedError`` (``async for`` just ends).
* **Cancellation.** A cancelled ``send`` did not send; a cancelled ``receive`` did not
  receive. No item is lost or delivered twice, whichever side is cancelled and when.
* **Order and fairness.** Items leave in exactly the order they were accepted. Waiting
  senders, and waiting receivers, are woken strictly first come, first served, and a newcomer
  never takes the room or the item promised to a waiter.

How: a waiter is woken by *granting* it a slot (sender) or an item (receiver), counted in
``_slots_granted`` / ``_items_granted`` until the woken task runs, so nobody else can take
what was promised. A task cancelled after its grant but before it ran hands the grant on to
the next waiter. Grants are counts, not positions: whoever takes an item takes the oldest,
which is what keeps the order exact under every interleaving of cancellations.

Capacity 0 (Go's unbuffered rendezvous) is not offered: a hand-off that completes in the
receiver but is then cancelled in the sender cannot be made unambiguous in asyncio, and every
use here wants a buffer anyway.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Generic, TypeVar

T = TypeVar("T")


class ChannelClosedError(Exception):
    """Sending on a closed channel, or receiving from one that is closed and drained."""


class _Wake(enum.Enum):
    GRANTED = enum.auto()  # a slot (senders) or an item (receivers) is reserved for the waiter
    CLOSED = enum.auto()  # the channel closed: senders fail, receivers look again
    TIMEOUT = enum.auto()  # receive_batch's collecting window ended


def _expire(waiter: asyncio.Future[_Wake]) -> None:
    if not waiter.done():
        waiter.set_result(_Wake.TIMEOUT)


class Channel(Generic[T]):
    """A bounded FIFO channel; see the module docstring for its guarantees."""

    __slots__ = (
        "_buffer",
        "_capacity",
        "_closed",
        "_items_granted",
        "_receivers",
        "_senders",
        "_slots_granted",
    )

    def __init__(self, capacity: int) -> None:
        """A channel holding at most ``capacity`` (at least 1) items not yet received."""
        if capacity < 1:
            msg = f"capacity must be at least 1, got {capacity}"
            raise ValueError(msg)
        self._capacity = capacity
        self._buffer: deque[T] = deque()
        self._closed = False
        self._senders: deque[asyncio.Future[_Wake]] = deque()
        self._receivers: deque[asyncio.Future[_Wake]] = deque()
        self._slots_granted = 0
        self._items_granted = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        """Items in the channel, including any a woken receiver is about to take."""
        return len(self._buffer)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Channel {state} {len(self._buffer)}/{self._capacity}>"

    # --- sending ------------------------------------------------------------------------------

    async def send(self, item: T) -> None:
        """Put ``item`` in the channel, waiting for room; raises if the channel is closed.

        Raises ``ChannelClosedError`` also when the channel closes while this waits. If the
        caller is cancelled while waiting, the item was not sent.
        """
        if self._closed:
            raise ChannelClosedError("send on a closed channel")
        if self._try_put(item):
            return
        waiter = self._enqueue(self._senders)
        try:
            wake = await waiter
        except BaseException:
            self._abandon(waiter, self._senders, granted=self._release_slot)
            raise
        if wake is _Wake.GRANTED:
            self._slots_granted -= 1
            # Granted before close() but running after it: close() is the cut-off, so refuse.
            if self._append_unless_closed(item):
                return
        raise ChannelClosedError("send on a closed channel")

    def try_send(self, item: T) -> bool:
        """Put ``item`` in the channel if it has room now; never waits.

        False when full (or when earlier senders are still waiting, who come first); raises
        ``ChannelClosedError`` when closed.
        """
        if self._closed:
            raise ChannelClosedError("send on a closed channel")
        return self._try_put(item)

    def _try_put(self, item: T) -> bool:
        # Room promised to a woken sender is counted in _free_slots(), and _dispatch() has
        # granted whatever was free: room left over means no sender is waiting for it.
        if self._free_slots() <= 0:
            return False
        self._buffer.append(item)
        self._dispatch()
        return True

    def _append_unless_closed(self, item: T) -> bool:
        accepted = not self._closed
        if accepted:
            self._buffer.append(item)
        self._dispatch()
        return accepted

    def _release_slot(self) -> None:
        self._slots_granted -= 1

    # --- receiving ----------------------------------------------------------------------------

    async def receive(self) -> T:
        """The oldest item, waiting for one; after ``close()`` the rest, then the end.

        Raises ``ChannelClosedError`` once the channel is closed and drained. If the caller is
        cancelled while waiting, nothing was taken.
        """
        await self._claim_first()
        return self._take(1)[0]

    async def receive_batch(self, max_items: int, max_wait_s: float) -> list[T]:
        """Up to ``max_items`` items: waits for the first, then collects for ``max_wait_s``.

        Returns early when ``max_items`` are in, when the channel is closed (nothing more can
        arrive) or when its buffer is full of items this batch holds (nothing more can arrive
        until the batch is taken, so a batch holds at most ``capacity`` items). Raises
        ``ChannelClosedError`` once the channel is closed and drained.

        Lossless under cancellation: the items stay in the channel, reserved for this batch,
        until it returns. A caller cancelled at any point has taken nothing; what it had
        reserved goes to the next receiver, in order.
        """
        if max_items < 1:
            msg = f"max_items must be at least 1, got {max_items}"
            raise ValueError(msg)
        await self._claim_first()
        claimed = 1
        until = asyncio.get_running_loop().time() + max_wait_s
        try:
            while claimed < max_items and await self._claim_more(until):
                claimed += 1
        except BaseException:
            self._items_granted -= claimed
            self._dispatch()
            raise
        return self._take(claimed)

    async def _claim_first(self) -> None:
        """Reserve one item, waiting as long as it takes; raise at the end of the channel."""
        while True:
            if self._claim_now():
                return
            if self._closed and not self._buffer:
                raise ChannelClosedError("receive from a closed, drained channel")
            if await self._wait_for_item(None) is _Wake.GRANTED:
                return
            # Woken by close(): look again (what is left may still be claimed by others).

    async def _claim_more(self, until: float) -> bool:
        """Reserve one more item if it comes before ``until`` (loop time) and still can."""
        loop = asyncio.get_running_loop()
        while True:
            if self._claim_now():
                return True
            left = until - loop.time()
            if self._closed or len(self._buffer) >= self._capacity or left <= 0:
                return False
            wake = await self._wait_for_item(left)
            if wake is not _Wake.CLOSED:
                return wake is _Wake.GRANTED
            # Woken by close(): take what is still free, then stop.

    def drain(self) -> list[T]:
        """Take every item no receiver has claimed, without waiting (possibly none)."""
        free = self._unclaimed()
        if free <= 0:
            return []
        self._items_granted += free
        return self._take(free)

    def push_front(self, items: Iterable[T]) -> None:
        """Put items taken earlier back at the front, ahead of everything buffered, in order.

        For holders of items they could not finish (a forwarder stopped mid-send, a stage
        cancelled mid-item), so that stopping never loses them. Works on a closed channel
        (the items were accepted before the close) and may exceed the capacity for a while:
        senders then wait until receivers bring it back under.
        """
        self._buffer.extendleft(reversed(list(items)))
        self._dispatch()

    def _claim_now(self) -> bool:
        """Reserve an item for the caller if one is free and no earlier receiver waits."""
        # As in _try_put: an item left unclaimed after _dispatch() is nobody's yet.
        if self._unclaimed() <= 0:
            return False
        self._items_granted += 1
        return True

    def _take(self, count: int) -> list[T]:
        """Take ``count`` items the caller has claimed."""
        self._items_granted -= count
        taken = [self._buffer.popleft() for _ in range(count)]
        self._dispatch()
        return taken

    async def _wait_for_item(self, patience: float | None) -> _Wake:
        """Queue for an item; TIMEOUT after ``patience`` seconds unless it is None."""
        waiter = self._enqueue(self._receivers)
        timer = None
        if patience is not None:
            timer = asyncio.get_running_loop().call_later(patience, _expire, waiter)
        try:
            wake = await waiter
        except BaseException:
            self._abandon(waiter, self._receivers, granted=self._release_item)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if wake is _Wake.TIMEOUT:
            with suppress(ValueError):
                self._receivers.remove(waiter)
        return wake

    def _release_item(self) -> None:
        self._items_granted -= 1

    # --- closing and iterating ----------------------------------------------------------------

    def close(self) -> None:
        """Accept nothing more; idempotent. Buffered items stay for receivers to drain."""
        if self._closed:
            return
        self._closed = True
        # Every waiter wakes: senders to fail, receivers to look again (what is buffered may
        # all be claimed, in which case they wait for it to be taken or handed back).
        for waiters in (self._senders, self._receivers):
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(_Wake.CLOSED)

    def __aiter__(self) -> Channel[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except ChannelClosedError:
            raise StopAsyncIteration from None

    # --- bookkeeping --------------------------------------------------------------------------

    def _free_slots(self) -> int:
        return self._capacity - len(self._buffer) - self._slots_granted

    def _unclaimed(self) -> int:
        return len(self._buffer) - self._items_granted

    def _enqueue(self, waiters: deque[asyncio.Future[_Wake]]) -> asyncio.Future[_Wake]:
        waiter = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        return waiter

    def _abandon(
        self,
        waiter: asyncio.Future[_Wake],
        waiters: deque[asyncio.Future[_Wake]],
        *,
        granted: Callable[[], None],
    ) -> None:
        """Clean up after a waiter that stopped waiting (cancelled, or another exception)."""
        if not waiter.done():
            waiter.cancel()
        elif not waiter.cancelled() and waiter.result() is _Wake.GRANTED:
            granted()  # woken but never ran: what it was promised goes to the next one
        with suppress(ValueError):
            waiters.remove(waiter)
        self._dispatch()

    def _dispatch(self) -> None:
        """Grant free slots to waiting senders and free items to waiting receivers, in order.

        Called after every change of state, so that between calls no waiter is left waiting
        for something that is there.
        """
        senders = self._senders
        while senders and self._free_slots() > 0:
            waiter = senders.popleft()
            if not waiter.done():
                self._slots_granted += 1
                waiter.set_result(_Wake.GRANTED)
        receivers = self._receivers
        while receivers and self._unclaimed() > 0:
            waiter = receivers.popleft()
            if not waiter.done():
                self._items_granted += 1
                waiter.set_result(_Wake.GRANTED)
        if self._closed and not self._buffer:
            # Closed and drained: whoever still waits gets the end of the channel.
            while receivers:
                waiter = receivers.popleft()
                if not waiter.done():
                    waiter.set_result(_Wake.CLOSED)
