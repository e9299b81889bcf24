"""Run the ASGI app with uvicorn inside ``ledgerd serve``'s own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import uvicorn

from ledgerd.gateway.asgi import Receive, Scope, Send
from ledgerd.main.settings import Settings
from ledgerd.platform.file_limit import open_file_limit
from ledgerd.platform.http_guard import ConnectionLimits, guarded_protocol
from ledgerd.platform.listening import CannotListenError, split_address, why_not

log = logging.getLogger(__name__)

_STARTUP_POLL_S = 0.01
# HTTP connections may hold the files the process may open but these, kept for gRPC connections,
# the database pool, the listening sockets and the logs (a serve holding 15,000 streams used 26
# files besides them); under a small limit, a quarter of it instead.
FILES_KEPT_FROM_HTTP = 1024
HTTP_SHARE_OF_SMALL_FILE_LIMIT = 0.75
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ADDRESS_SETTING = "LEDGERD_HTTP_ADDRESS"
_BACKLOG = 2048  # uvicorn's own default
# The largest WebSocket message a client may send: subscribe messages are small (100 accounts
# of 128 characters is 13 KiB); a larger one is closed with 1009 before the app reads it.
WS_MAX_MESSAGE_BYTES = 64 * 1024
DEFAULT_HEARTBEAT_S = 15.0


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


def http_room(files: int) -> int:
    """How many HTTP connections a process that may open ``files`` files lets in at most.

    What the rest of the process needs does not grow with the limit: a fixed reserve, or a
    quarter of a limit too small for it (1,024 files: 768 for HTTP).
    """
    return max(1, int(files * HTTP_SHARE_OF_SMALL_FILE_LIMIT), files - FILES_KEPT_FROM_HTTP)


def within_file_limit(limits: ConnectionLimits) -> ConnectionLimits:
    """``limits`` with the connection cap lowered to what the open-file limit leaves room for.

    Past it, accepting fails with "too many open files" for everyone, gRPC included; a lower
    cap refuses only the extra HTTP connections, with a 503. A deployment with more than about
    a thousand gRPC clients per process sets ``LEDGERD_HTTP_MAX_CONNECTIONS`` lower itself.
    """
    files = open_file_limit()
    if files is None:
        return limits
    room = http_room(files)
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


def _listen(address: str) -> socket.socket:
    """A socket listening on ``address``, or ``CannotListenError`` naming the setting.

    Bound here rather than by uvicorn, which logs a failed bind and exits the process from
    inside its task, leaving whatever else had started (the gRPC server) to die with it.
    """
    host, port = split_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # [::]:8080 as gRPC takes it
    try:
        return socket.create_server((host, port), family=family, backlog=_BACKLOG)
    except OSError as error:
        hint = (
            f"; set {ADDRESS_SETTING} to a free HOST:PORT (HOST:0 picks one)"
            if error.errno == errno.EADDRINUSE
            else ""
        )
        raise CannotListenError(ADDRESS_SETTING, address, why_not(error) + hint) from None


async def start_http_server(  # noqa: PLR0913 - keyword-only options, each with a default
    app: AsgiApp,
    address: str,
    grace_s: float,
    limits: ConnectionLimits,
    ssl_context: ssl.SSLContext | None = None,
    *,
    heartbeat_s: float = DEFAULT_HEARTBEAT_S,
) -> RunningHttpServer:
    """Serve ``app`` on ``address``; with TLS when given ``ssl_context``.

    WebSocket connections (the event streams) are pinged every ``heartbeat_s``
    (``LEDGERD_STREAM_HEARTBEAT_SECONDS``), and closed if a pong has not come back within as
    long: a client gone without closing does not hold its subscriptions for ever.

    The context is the one ``main/tls.py`` loads reloaded certificates into: uvicorn is handed
    it as it is, not certificate files it would read once.
    """
    listening = _listen(address)
    limits = within_file_limit(limits)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,  # the gateway writes its own access log, with request ids
        lifespan="off",
        timeout_graceful_shutdown=max(1, round(grace_s)),
        # Slow clients (platform/http_guard.py): head and body deadlines and the connection cap
        # live in the protocol; the idle timeout and the head's size limit are uvicorn's own.
        http=guarded_protocol(limits),
        timeout_keep_alive=limits.idle_timeout_s,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        # websockets' sans-I/O protocol (uvicorn's other implementation of the same library
        # is its deprecated legacy API).
        ws="websockets-sansio",
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        ws_ping_interval=heartbeat_s,
        ws_ping_timeout=heartbeat_s,
        ssl_context_factory=None
        if ssl_context is None
        else (lambda _config, _default: ssl_context),
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[listening]))
    while not server.started:
        if task.done():
            await task  # startup failed: raise its error
            msg = f"the HTTP server did not start on {address}"
            raise RuntimeError(msg)
        await asyncio.sleep(_STARTUP_POLL_S)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return RunningHttpServer(server, task, int(bound))
