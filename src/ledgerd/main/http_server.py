"""Run the ASGI app with uvicorn inside ``ledgerd serve``'s own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import uvicorn

from ledgerd.gateway.asgi import Receive, Scope, Send
from ledgerd.main.settings import Settings
from ledgerd.platform.file_limit import open_file_limit
from ledgerd.platform.http_guard import ConnectionLimits, guarded_protocol

log = logging.getLogger(__name__)

_STARTUP_POLL_S = 0.01
# HTTP connections may hold at most this share of the files the process may open; the rest is
# kept for gRPC connections, the database, the listening sockets and the logs.
HTTP_SHARE_OF_FILE_LIMIT = 0.75
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The process owns its signals: `serve` decides when the HTTP server stops.
        yield


@dataclass(frozen=True, slots=True)
class RunningHttpServer:
    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int

    async def stop(self) -> None:
        """Stop accepting connections and let requests in flight finish (bounded by config)."""
        self.server.should_exit = True
        await self.task


def connection_limits(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(
        max_connections=settings.http_max_connections,
        header_timeout_s=settings.http_header_timeout_seconds,
        body_timeout_s=settings.http_body_timeout_seconds,
        idle_timeout_s=settings.http_idle_timeout_seconds,
        max_header_bytes=settings.http_max_header_bytes,
    )


def within_file_limit(limits: ConnectionLimits) -> ConnectionLimits:
    """``limits`` with the connection cap lowered to what the open-file limit leaves room for.

    Past it, accepting fails with "too many open files" for everyone, gRPC included; a lower
    cap refuses only the extra HTTP connections, with a 503.
    """
    files = open_file_limit()
    if files is None:
        return limits
    room = max(1, int(files * HTTP_SHARE_OF_FILE_LIMIT))
    if limits.max_connections <= room:
        return limits
    log.warning(
        "LEDGERD_HTTP_MAX_CONNECTIONS=%d: this process may open only %d files; "
        "HTTP connections are capped at %d",
        limits.max_connections,
        files,
        room,
    )
    return dataclasses.replace(limits, max_connections=room)


async def start_http_server(
    app: AsgiApp, address: str, grace_s: float, limits: ConnectionLimits
) -> RunningHttpServer:
    host, _, port = address.rpartition(":")
    limits = within_file_limit(limits)
    config = uvicorn.Config(
        app,
        host=host.removeprefix("[").removesuffix("]"),  # [::]:8080 as gRPC takes it
        port=int(port),
        log_config=None,
        access_log=False,  # the gateway writes its own access log, with request ids
        lifespan="off",
        timeout_graceful_shutdown=max(1, round(grace_s)),
        # Slow clients (platform/http_guard.py): head and body deadlines and the connection cap
        # live in the protocol; the idle timeout and the head's size limit are uvicorn's own.
        http=guarded_protocol(limits),
        timeout_keep_alive=limits.idle_timeout_s,
        h11_max_incomplete_event_size=limits.max_header_bytes,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task  # startup failed: raise its error
            msg = f"the HTTP server did not start on {address}"
            raise RuntimeError(msg)
        await asyncio.sleep(_STARTUP_POLL_S)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return RunningHttpServer(server, task, int(bound))
