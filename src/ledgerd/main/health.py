"""Keep the gRPC health status true to the database: NOT_SERVING while it cannot take writes.

HTTP readiness (`/readyz`) probes on each request; gRPC health clients read a status the
server sets, so `serve` probes on a timer and changes the status when the answer changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from grpc_health.v1 import health, health_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.platform.db.health import probe_writes

log = logging.getLogger(__name__)

# How long a probe may wait for the write lock or the server before "cannot take writes".
PROBE_TIMEOUT_S = 2.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def watch_database_health(  # noqa: PLR0913 - what to probe, whom to tell, how often, until when
    engine: AsyncEngine,
    checker: health.aio.HealthServicer,
    services: Sequence[str],
    *,
    interval_s: float,
    stop: asyncio.Event,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> None:
    """Probe every ``interval_s`` until ``stop``; log each change of state once."""
    serving = True
    while not stop.is_set():
        state = await probe_writes(engine, timeout_s)
        if state.writable != serving:
            serving = state.writable
            if serving:
                log.warning("the database takes writes again: gRPC health is SERVING")
            else:
                log.warning("the database cannot take writes (%s): NOT_SERVING", state.reason)
            for service in services:
                await checker.set(service, SERVING if serving else NOT_SERVING)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
