"""Helpers shared by the concurrency tests."""

import asyncio
from collections.abc import Callable


async def settle(rounds: int = 10) -> None:
    """Let every ready task run a few steps (no wall-clock waiting)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool], rounds: int = 1000) -> None:
    """Let the loop run until ``condition()`` holds; fail instead of hanging."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    msg = "condition never held"
    raise AssertionError(msg)
