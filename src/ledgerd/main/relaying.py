"""The outbox relay, a background worker of ``ledgerd worker`` and of ``serve``.

The outbox is shared by every context that publishes events, so its one relay is declared
here, beside the contexts' own workers, not by any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from dishka import AsyncContainer
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.main.bounded_context import BackgroundWorker, first_ended
from ledgerd.main.publishers import destination
from ledgerd.main.secrets import ResolvedSecrets
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
) -> AsyncIterator[asyncio.Future[None]]:
    """The relay (and, on PostgreSQL, its NOTIFY listener) runs while the block does.

    The block gets a future done if any of them ends before it is told to (the supervisor's
    watch: see ledgerd.main.background).

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
        tasks.append(
            asyncio.create_task(
                listen_to_outbox(container, settings, relay.wake, stop), name="outbox-listener"
            )
        )
    try:
        yield first_ended(tasks)
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


async def listen_to_outbox(
    container: AsyncContainer,
    settings: Settings,
    wake: Callable[[], object],
    stop: asyncio.Event,
    *,
    wake_stream: Callable[[str], object] | None = None,
) -> None:
    """Call ``wake`` on every commit that wrote events, in any process, until ``stop``.

    PostgreSQL's NOTIFY, for the relay and for whatever else reads the outbox (webhooks, the
    streams' hub). With ``wake_stream``, a notification calls it with the ledger it names and
    ``wake`` is called on each (re)connection only (see ``listen_for_commits``).
    """
    engine = await container.get(AsyncEngine)
    # The URL of the engine's next connection: a rotated or leased role, if any.
    secrets = await container.get(ResolvedSecrets)
    current = secrets.database_url(settings)
    await listen_for_commits(
        (lambda: libpq_dsn(make_url(current()))) if current is not None else libpq_dsn(engine.url),
        wake,
        stop,
        wake_stream=wake_stream,
    )


def relays_in_worker(settings: Settings) -> bool:
    """Whether ``ledgerd worker`` relays: not to the hub.

    The hub is in-process: relaying to it in the worker would mark events published that no
    subscriber (they live in ``serve``) could ever see. They stay in the outbox instead.
    """
    return settings.events_publisher != "hub"


OUTBOX_RELAY = BackgroundWorker(
    name="outbox relay",
    run=relaying,
    in_serve=relay_in_serve,
    in_worker=relays_in_worker,
)
