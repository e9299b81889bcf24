"""Delivery attempts are kept for ``LEDGERD_WEBHOOKS_ATTEMPTS_RETENTION_DAYS``, then deleted.

Every attempt is a row: a busy ledger with a partner that is down for a day writes hundreds of
thousands. The sweep runs where the dispatcher does, once when it starts and then every
``interval_s``, going through the old attempts in batches (one short transaction each, so
neither PostgreSQL's row locks nor SQLite's single writer are held for long), each batch
starting where the one before stopped, until a batch comes back short. Attempts at events still
dead-lettered are kept, whatever their age, until a replay delivers them, and so is each
endpoint's last attempt. A sweep that fails (the database away) is one warning of one line, and
the next interval tries again; ``stop`` ends it between two batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from ledgerd.kernel.clock import Clock
from ledgerd.webhooks.application.ports import AttemptPosition, AttemptRecords

log = logging.getLogger(__name__)

DEFAULT_BATCH = 1000
DEFAULT_INTERVAL_S = 3600.0


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long attempts are kept (``days`` 0: for ever), and how the sweep goes about it."""

    days: int
    batch: int = DEFAULT_BATCH
    interval_s: float = DEFAULT_INTERVAL_S

    @property
    def keeps_all(self) -> bool:
        return self.days == 0


class AttemptRetention:
    def __init__(self, records: AttemptRecords, policy: RetentionPolicy, clock: Clock) -> None:
        self._records = records
        self._policy = policy
        self._clock = clock

    async def sweep(self, stop: asyncio.Event | None = None) -> int:
        """Delete the attempts older than the policy keeps, batch by batch; how many went.

        ``stop`` set ends the sweep between two batches (shutdown does not wait for the rest).
        """
        if self._policy.keeps_all:
            return 0
        cutoff = self._clock.now() - timedelta(days=self._policy.days)
        deleted = 0
        # Each batch starts where the one before stopped: the attempts kept (a long outage's
        # dead letters can be most of the old rows) are read once a sweep, not once a batch.
        after: AttemptPosition | None = None
        while stop is None or not stop.is_set():
            batch = await self._records.delete_older_than(cutoff, self._policy.batch, after)
            deleted += batch.deleted
            if batch.read < self._policy.batch:
                break
            after = batch.last
        return deleted

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep now and every interval until ``stop`` is set; never raises for a failed sweep."""
        if self._policy.keeps_all:
            await stop.wait()
            return
        while not stop.is_set():
            try:
                deleted = await self.sweep(stop)
            except Exception as error:  # noqa: BLE001 - one warning; the next interval retries
                log.warning(
                    "webhook attempts older than %d days were not deleted (%s); next try in %g s",
                    self._policy.days,
                    _one_line(error),
                    self._policy.interval_s,
                )
            else:
                if deleted:
                    log.info(
                        "deleted %d webhook attempts older than %d days",
                        deleted,
                        self._policy.days,
                    )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._policy.interval_s):
                    await stop.wait()


def _one_line(error: Exception) -> str:
    """The error's first line: the database's own errors go on with the statement and a link."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
