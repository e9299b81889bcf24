"""Every concurrency test fails if it leaves a task behind, as Go's goleak does for goroutines."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.unit.platform.concurrency.support import settle


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    await settle()
    leaked = asyncio.all_tasks() - before - {asyncio.current_task()}
    for task in leaked:
        task.cancel()
    assert not leaked, f"tasks left running: {leaked}"
