"""Run the ASGI app with uvicorn inside ``ledgerd serve``'s own event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import uvicorn

from ledgerd.gateway.asgi import Receive, Scope, Send

_STARTUP_POLL_S = 0.01
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


async def start_http_server(app: AsgiApp, address: str, grace_s: float) -> RunningHttpServer:
    host, _, port = address.rpartition(":")
    config = uvicorn.Config(
        app,
        host=host,
        port=int(port),
        log_config=None,
        access_log=False,  # the gateway writes its own access log, with request ids
        lifespan="off",
        timeout_graceful_shutdown=max(1, round(grace_s)),
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
