"""The retention sweep's loop: a failed sweep is one warning and the next interval tries again.

The records are a fake (named so): what is deleted and kept is tested on the databases
(tests/integration/webhooks/test_attempt_retention.py); this is about the loop around it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from ledgerd.kernel.errors import unavailable
from ledgerd.webhooks.application.ports import AttemptPosition, SweptBatch
from ledgerd.webhooks.application.retention import AttemptRetention, RetentionPolicy
from tests.fakes.clock import ManualClock

WAIT_S = 10.0  # an upper bound on a wait, not a measurement


class FlakyAttemptRecords:
    """Fake: the database is away for the first sweep, then has 5 old attempts to delete."""

    def __init__(self) -> None:
        self.calls = 0
        self.left = 5
        self.swept = asyncio.Event()

    async def delete_older_than(
        self, cutoff: datetime, limit: int, after: AttemptPosition | None = None
    ) -> SweptBatch:
        del after
        self.calls += 1
        if self.calls == 1:
            raise unavailable("the database")
        deleted = min(limit, self.left)
        self.left -= deleted
        if not self.left:
            self.swept.set()
        return SweptBatch(
            deleted, deleted, AttemptPosition(cutoff, self.calls) if deleted else None
        )


async def test_a_failed_sweep_is_a_warning_and_the_next_one_deletes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = FlakyAttemptRecords()
    policy = RetentionPolicy(days=30, batch=2, interval_s=0.01)
    retention = AttemptRetention(records, policy, ManualClock(datetime(2026, 12, 7, tzinfo=UTC)))
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="ledgerd.webhooks.application.retention"):
        running = asyncio.create_task(retention.run(stop))
        async with asyncio.timeout(WAIT_S):
            await records.swept.wait()
        stop.set()
        async with asyncio.timeout(WAIT_S):
            await running
    assert caplog.messages[0].startswith(
        "webhook attempts older than 30 days were not deleted (UNAVAILABLE: the database is "
        "unavailable"
    )
    assert caplog.messages[1] == "deleted 5 webhook attempts older than 30 days"
    assert records.calls == 4  # the failure, then 2 + 2 + 1 (a short batch ends the sweep)
