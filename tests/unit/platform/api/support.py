"""Helpers shared by the API pipeline tests."""

from __future__ import annotations

import asyncio

# A bound, so that a broken server fails the test instead of hanging it; never a measurement.
WAIT_S = 10.0


class Gauge:
    """A count that fakes move as calls reach them, and that a test can wait on (bounded)."""

    def __init__(self) -> None:
        self.value = 0
        self._changed = asyncio.Event()

    def add(self, amount: int = 1) -> None:
        self.value += amount
        self._changed.set()  # wakes whoever waits now; later waits wait for the next change
        self._changed = asyncio.Event()

    async def reaches(self, target: int) -> None:
        async with asyncio.timeout(WAIT_S):
            while self.value != target:
                await self._changed.wait()
