"""A bounded queue that serves its keys in turn: no key's backlog holds up another key's items.

Items are queued per key (a FIFO lane each) and taken a run at a time: ``take`` hands out up
to ``max_items`` consecutive items of one key, with a **lease** on that key. Keys are served
round-robin among those that have items and fewer than ``per_key`` leases out; a key served
goes to the back of the line. So however much one key has queued, every other key with items
waits for at most one run of each key ahead of it, not for the whole backlog.

The rest follows ``Channel``: ``try_put`` refuses (False) beyond ``capacity`` items in all;
``close()`` accepts nothing more, and ``take`` hands out what is queued before it raises
``ChannelClosedError``; a cancelled ``take`` took nothing; waiting takers are served first
come, first served.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ledgerd.platform.concurrency.channel import ChannelClosedError

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


@dataclass(eq=False)
class Lease(Generic[K]):
    """A run of ``key`` handed out; ``release()`` it when done with the items (once)."""

    key: K
    _on_release: Callable[[K], None] | None

    def release(self) -> None:
        on_release, self._on_release = self._on_release, None
        if on_release is not None:
            on_release(self.key)


class FairQueue(Generic[K, T]):
    def __init__(self, capacity: int, *, per_key: int = 1) -> None:
        if capacity < 1 or per_key < 1:
            msg = f"capacity and per_key must be at least 1, got {capacity}, {per_key}"
            raise ValueError(msg)
        self._capacity = capacity
        self._per_key = per_key
        self._lanes: dict[K, deque[T]] = {}
        self._leases: dict[K, int] = {}
        self._ready: deque[K] = deque()  # keys with items and a lease to spare, in turn
        self._size = 0
        self._closed = False
        self._takers: deque[asyncio.Future[None]] = deque()

    def __len__(self) -> int:
        return self._size

    @property
    def closed(self) -> bool:
        return self._closed

    def try_put(self, key: K, item: T, *, admitted: bool = False) -> bool:
        """Queue ``item`` at the back of ``key``'s lane; False (nothing queued) when full.

        ``admitted``: the item continues work the queue already accepted (the next part of
        something taken in parts), so the capacity does not refuse it. Once closed, every
        put raises ``ChannelClosedError``.
        """
        if self._closed:
            msg = "the queue is closed"
            raise ChannelClosedError(msg)
        if self._size >= self._capacity and not admitted:
            return False
        self._lanes.setdefault(key, deque()).append(item)
        self._size += 1
        self._mark_ready(key)
        return True

    async def take(
        self, max_items: int, *, weight: Callable[[T], int] = lambda _: 1, max_weight: int = 0
    ) -> tuple[K, list[T], Lease[K]]:
        """The next key in turn, up to ``max_items`` of its first items, and a lease on it.

        With ``max_weight``, the run also stops before its weight would pass it (its first
        item always goes, however heavy). Waits while no key can be served; raises
        ``ChannelClosedError`` once closed with nothing left.
        """
        while not self._ready:
            if self._closed and self._size == 0:
                msg = "the queue is closed and drained"
                raise ChannelClosedError(msg)
            waiter = asyncio.get_running_loop().create_future()
            self._takers.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._takers:
                    self._takers.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake_one()  # it was woken for work it will not take: pass it on
                raise
        key = self._ready.popleft()
        items: list[T] = []
        self._add_from_lane(key, items, max_items, weight, max_weight)
        self._leases[key] = self._leases.get(key, 0) + 1
        self._mark_ready(key)
        return key, items, Lease(key, self._released)

    def take_more(
        self,
        lease: Lease[K],
        items: list[T],
        max_items: int,
        *,
        weight: Callable[[T], int] = lambda _: 1,
        max_weight: int = 0,
    ) -> None:
        """Extend ``items``, the run ``lease`` came with, by what its key received since.

        Within the same limits as ``take``; never waits. For a taker that lingers a moment
        so that a run that came out short can fill up.
        """
        key = lease.key
        if key in self._lanes:
            self._add_from_lane(key, items, max_items, weight, max_weight)
            if key not in self._lanes and key in self._ready:
                self._ready.remove(key)

    def _add_from_lane(
        self,
        key: K,
        items: list[T],
        max_items: int,
        weight: Callable[[T], int],
        max_weight: int,
    ) -> None:
        lane = self._lanes[key]
        total = sum(weight(item) for item in items)
        taken = 0
        while lane and len(items) < max_items:
            heavier = total + weight(lane[0])
            if items and max_weight and heavier > max_weight:
                break
            items.append(lane.popleft())
            total = heavier
            taken += 1
        self._size -= taken
        if not lane:
            del self._lanes[key]

    def close(self) -> None:
        """Accept nothing more; takers drain what is queued, then get ChannelClosedError."""
        self._closed = True
        while self._takers:
            self._wake_one()

    def drain(self) -> list[T]:
        """Take every queued item at once, lanes in turn order (for a hard stop)."""
        items = [item for lane in self._lanes.values() for item in lane]
        self._lanes.clear()
        self._ready.clear()
        self._size = 0
        return items

    def _released(self, key: K) -> None:
        left = self._leases[key] - 1
        if left:
            self._leases[key] = left
        else:
            del self._leases[key]
        self._mark_ready(key)

    def _mark_ready(self, key: K) -> None:
        if (
            key in self._lanes
            and key not in self._ready
            and self._leases.get(key, 0) < self._per_key
        ):
            self._ready.append(key)
            self._wake_one()

    def _wake_one(self) -> None:
        while self._takers:
            waiter = self._takers.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
