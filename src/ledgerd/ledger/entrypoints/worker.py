"""The background loop of ``ledgerd worker``: expire holds whose timeout has passed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ledgerd.ledger.application.expire_pending import ExpirePending, ExpirePendingHandler
from ledgerd.platform.throttled_log import ThrottledLog

log = logging.getLogger(__name__)


async def run_expiry_loop(
    expire: ExpirePendingHandler,
    stop: asyncio.Event,
    *,
    interval_s: float,
    on_sweep: Callable[[int], None] | None = None,
) -> None:
    """Sweep every ``interval_s`` seconds until ``stop`` is set.

    A sweep in progress always finishes (each expiry is its own committed transfer), so a
    stop request never leaves one half-done. A failing sweep is logged and retried on the next
    tick rather than ending the worker: a database restart must not need a worker restart.
    """
    failures = ThrottledLog(log)  # an outage fails every sweep alike: one line per interval
    while not stop.is_set():
        try:
            expired = await expire(ExpirePending())
        except Exception as error:  # noqa: BLE001 - logged (throttled), then retried
            failures.log(
                logging.ERROR,
                type(error).__name__,
                "expiry sweep failed (%s); retrying every %.1f s",
                error,
                interval_s,
                error=error,
            )
        else:
            if expired:
                log.info("expired %d holds", expired)
            if on_sweep is not None:
                on_sweep(expired)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        except TimeoutError:
            continue
