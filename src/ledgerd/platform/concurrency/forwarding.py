"""The loop fan-in and fan-out share: move items on without ever dropping one."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ledgerd.platform.concurrency.channel import Channel, ChannelClosedError

T = TypeVar("T")


class Countdown:
    """Run ``then`` once ``count`` parties have called ``done()``: the last worker out closes."""

    __slots__ = ("_left", "_then")

    def __init__(self, count: int, then: Callable[[], None]) -> None:
        self._left = count
        self._then = then

    def done(self) -> None:
        self._left -= 1
        if self._left == 0:
            self._then()


async def forward(source: Channel[T], route: Callable[[T], Channel[T]]) -> None:
    """Receive from ``source`` until it ends, sending each item to the channel ``route`` picks.

    The loop holds at most one item at a time; if it stops while holding one (cancelled, the
    route failing, or the target closed by its consumer) the item goes back to the front of
    ``source``, never lost. A closed target ends the loop quietly; anything else propagates.
    """
    async for item in source:
        try:
            await route(item).send(item)
        except ChannelClosedError:
            source.push_front([item])
            return
        except BaseException:
            source.push_front([item])
            raise
