"""Running the outbox relay beside other work: in ``ledgerd worker``, and in ``serve``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from dishka import AsyncContainer
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.main.publishers import destination
from ledgerd.main.settings import Settings
from ledgerd.platform.db.engine import is_sqlite
from ledgerd.platform.outbox.listener import libpq_dsn, listen_for_commits
from ledgerd.platform.outbox.presence import RelayPresence, this_process
from ledgerd.platform.outbox.relay import OutboxRelay
from ledgerd.platform.outbox.store import OutboxStore

log = logging.getLogger(__name__)


def relay_in_serve(settings: Settings) -> bool:
    """Whether ``serve`` relays itself: the embedded database has no other process to do it."""
    if settings.relay_in_serve == "auto":
        return is_sqlite(settings.database_url)
    return settings.relay_in_serve == "on"


@contextlib.asynccontextmanager
async def relaying(
    container: AsyncContainer, settings: Settings, command: str
) -> AsyncIterator[OutboxRelay]:
    """The relay (and, on PostgreSQL, its NOTIFY listener) runs while the block does.

    ``command`` (the ``ledgerd`` command running it) is recorded with the relay in the
    database, for ``ledgerd outbox`` to show, from the relay's start to its clean stop.
    Leaving the block lets the sweep in progress finish and then one last sweep run, so
    events committed up to then are published before the process exits.
    """
    relay = await container.get(OutboxRelay)
    presence = RelayPresence(
        await container.get(OutboxStore),
        this_process(settings.events_publisher, destination(settings), command, datetime.now(UTC)),
    )
    await presence.heartbeat()
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(relay.run(stop), name="outbox-relay"),
        asyncio.create_task(presence.run(stop), name="outbox-relay-presence"),
    ]
    if not is_sqlite(settings.database_url):
        engine = await container.get(AsyncEngine)
        tasks.append(
            asyncio.create_task(
                listen_for_commits(libpq_dsn(engine.url), relay.wake, stop),
                name="outbox-listener",
            )
        )
    try:
        yield relay
    finally:
        stop.set()
        try:
            # A broker that hangs must not hold the process past its grace period: what is
            # not published stays in the outbox for the next relay.
            async with asyncio.timeout(settings.shutdown_grace_seconds):
                await asyncio.gather(*tasks, return_exceptions=True)
                with contextlib.suppress(Exception):
                    await relay.sweep()
        except TimeoutError:
            log.warning("the outbox relay did not finish in time; the outbox keeps the rest")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await presence.withdraw()
