"""A relay's row in ``outbox_relays``: how anyone can tell which relays run, and where to.

The row is written when the relay starts, refreshed every ``HEARTBEAT_INTERVAL_S`` and
removed on a clean stop; a relay that died leaves its row behind, which readers show as
stale once it is ``STALE_AFTER`` old, and which any relay deletes once it is
``FORGET_AFTER`` old. Refreshing runs beside the relay's sweeps, not in them: a relay
waiting on a slow broker is still alive, and one write every few seconds costs nothing,
where one per published batch would cost a write per batch.

This is bookkeeping: when the database fails it, the failure is logged (once per interval)
and the next heartbeat tries again; it never stops the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import datetime, timedelta

from ledgerd.platform.outbox.store import OutboxStore, RelayIdentity
from ledgerd.platform.throttled_log import ThrottledLog

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 5.0
# Three heartbeats missed: the relay is most likely gone (or cut off from the database).
STALE_AFTER = timedelta(seconds=3 * HEARTBEAT_INTERVAL_S)
FORGET_AFTER = timedelta(days=1)
# A clean stop does not wait longer than this for its row to be removed: the row would
# only turn stale, then be forgotten.
WITHDRAW_WAIT_S = 5.0


def this_process(
    publisher: str, destination: str, command: str, started_at: datetime
) -> RelayIdentity:
    """A relay run by this process, with an id of its own."""
    return RelayIdentity(
        id=uuid.uuid4().hex,
        publisher=publisher,
        destination=destination,
        host=socket.gethostname(),
        pid=os.getpid(),
        command=command,
        started_at=started_at,
    )


class RelayPresence:
    """Keeps ``relay``'s row in ``outbox_relays`` up to date while ``run`` runs."""

    def __init__(
        self,
        store: OutboxStore,
        relay: RelayIdentity,
        *,
        interval_s: float = HEARTBEAT_INTERVAL_S,
    ) -> None:
        self._store = store
        self.relay = relay
        self._interval_s = interval_s
        self._failures = ThrottledLog(log)

    async def heartbeat(self) -> bool:
        """Say the relay is alive (its row made if missing); whether it was recorded.

        Given one interval at most: a database that does not answer must not hold up the
        heartbeats after it, nor a relay's start.
        """
        try:
            async with asyncio.timeout(self._interval_s):
                await self._store.relay_alive(self.relay, forget_after=FORGET_AFTER)
        except Exception as error:  # noqa: BLE001 - bookkeeping: logged, tried again later
            self._failures.log(
                logging.WARNING,
                type(error).__name__,
                "could not record the outbox relay as running (%s); trying again in %.0f s",
                str(error) or "no answer in time",
                self._interval_s,
                error=error,
            )
            return False
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """A heartbeat every interval until ``stop`` is set (the first comes one interval in).

        On a fixed schedule, however long each took: readers judge a relay by its last one.
        """
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += self._interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(due - loop.time(), 0.0))
            if stop.is_set():
                return
            await self.heartbeat()

    async def withdraw(self) -> None:
        """The relay stopped cleanly: remove its row (if the database allows, promptly)."""
        try:
            async with asyncio.timeout(WITHDRAW_WAIT_S):
                await self._store.relay_stopped(self.relay.id)
        except Exception as error:  # noqa: BLE001 - the row turns stale instead
            log.warning(
                "could not remove the outbox relay's record (%s); it will turn stale", error
            )
