"""PostgreSQL's NOTIFY as a wake-up for the relay: committed events are published at once.

The writer sends ``NOTIFY ledgerd_outbox`` inside the appending transaction, which PostgreSQL
delivers on commit to every session that LISTENs. This keeps one dedicated connection (not
from the pool: a pooled one would be handed to other work) and reconnects with back-off if it
drops; each (re)connection wakes the relay too, for anything committed while nobody listened.
The relay's poll interval remains the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg
from sqlalchemy.engine import URL

from ledgerd.platform.outbox.writer import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

_RECONNECT_MIN_S = 0.5
# What pg_stat_activity shows for the listening connection: an operator (or a test) tells it
# from the pool's connections, which it is not one of.
LISTENER_APPLICATION_NAME = "ledgerd outbox listener"
_RECONNECT_MAX_S = 30.0


def libpq_dsn(url: URL) -> str:
    """An asyncpg DSN for the same database as a ``postgresql+asyncpg://`` URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def listen_for_commits(
    dsn: str | Callable[[], str],
    wake: Callable[[], object],
    stop: asyncio.Event,
    *,
    wake_stream: Callable[[str], object] | None = None,
) -> None:
    """Call ``wake`` on every outbox notification (and on each connect) until ``stop``.

    ``dsn`` may be asked anew for each connection (rotated or leased credentials). With
    ``wake_stream``, a notification calls it with the stream (ledger) it names instead, and
    ``wake`` is called only on each connect (anything may have been missed then).
    """
    delay = _RECONNECT_MIN_S
    while not stop.is_set():
        lost = asyncio.Event()
        try:
            connection = await asyncpg.connect(
                dsn if isinstance(dsn, str) else dsn(),
                server_settings={"application_name": LISTENER_APPLICATION_NAME},
            )
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("outbox listener cannot connect (%s); retrying in %.1f s", error, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, _RECONNECT_MAX_S)
            continue
        delay = _RECONNECT_MIN_S
        try:
            connection.add_termination_listener(_setter(lost))
            await connection.add_listener(
                NOTIFY_CHANNEL, _caller(wake) if wake_stream is None else _naming(wake_stream)
            )
            wake()  # whatever was committed while nobody was listening
            stopping = asyncio.ensure_future(stop.wait())
            losing = asyncio.ensure_future(lost.wait())
            try:
                await asyncio.wait({stopping, losing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                losing.cancel()
            if lost.is_set():
                log.warning("outbox listener lost its connection; reconnecting")
        finally:
            with contextlib.suppress(Exception):
                await connection.close(timeout=5)


def _setter(event: asyncio.Event) -> Callable[..., None]:
    def set_it(*_: object) -> None:
        event.set()

    return set_it


def _caller(wake: Callable[[], object]) -> Callable[..., None]:
    def call_it(*_: object) -> None:
        wake()

    return call_it


def _naming(wake_stream: Callable[[str], object]) -> Callable[..., None]:
    def call_it(_connection: object, _pid: int, _channel: str, payload: str) -> None:
        wake_stream(payload)

    return call_it
