"""The loop that keeps a server's signing keys on the stored set.

``ledgerd keys rotate`` reaches running servers through it, without a restart.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from ledgerd.platform.throttled_log import ThrottledLog

log = logging.getLogger(__name__)


class ReloadableKeys(Protocol):
    """The process's key ring as its reloader keeps it (``identity/adapters/signing_keys``)."""

    @property
    def version(self) -> int: ...

    async def reload_if_rotated(self) -> bool: ...


async def run_key_reload_loop(
    keys: ReloadableKeys, stop: asyncio.Event, *, interval_s: float
) -> None:
    """Check for a rotated key set every ``interval_s`` seconds until ``stop`` is set.

    A failing check (the database out of reach, a stored set that cannot be read) is logged and
    retried on the next tick: the ring keeps the keys it has, and tokens keep being issued and
    verified with them.
    """
    failures = ThrottledLog(log)
    while not stop.is_set():
        try:
            reloaded = await keys.reload_if_rotated()
        except Exception as error:  # noqa: BLE001 - logged (throttled), then retried
            # The type only: a key set's parse error names the kind of fault, but say no more.
            failures.log(
                logging.ERROR,
                type(error).__name__,
                "signing key reload failed (%s); retrying every %.1f s",
                type(error).__name__,
                interval_s,
                error=error,
            )
        else:
            if reloaded:
                log.info("signing keys reloaded: key set version %d", keys.version)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        except TimeoutError:
            continue
