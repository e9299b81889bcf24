"""Server-Sent Events: ``GET /v1/ledgers/{ledger}/events:stream``.

``?after=N`` (or the ``Last-Event-ID`` header, which wins: it is what a reconnecting EventSource
sends), ``&account=A`` and ``&type=T`` (each repeatable) as WatchLedger's fields; ``?ticket=``
in place of an ``Authorization`` header. Each event is::

    id: <sequence>
    event: <type>
    data: <the CloudEvents JSON document, one line>

after a first ``retry:`` hint, with a comment line (``: ping``) after each idle heartbeat
interval so that proxies keep the connection. A refusal before the stream starts is the REST
API's problem answer (400, 401, 403, 404); an end after it started (the server shutting down,
the credentials expiring) is a last ``event: error`` whose data is the problem body, with the
position to resume after in its details, and then the end of the response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from datetime import datetime
from typing import Final

from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.principal import current_principal
from ledgerd.platform.api.http_problems import Problem, problem_of_error
from ledgerd.platform.api.pipeline import UnexpectedError, request_id_of
from ledgerd.platform.throttled_log import ThrottledLog
from ledgerd.streaming.application.subscription import Subscription
from ledgerd.streaming.entrypoints.http_streams import (
    SSE,
    TICKET_PARAMETER,
    Receive,
    Scope,
    Send,
    StreamEdge,
    answer_problem,
    headers_of,
    position,
    query_of,
    refuse_unknown,
    single,
    stream_call,
)
from ledgerd.streaming.entrypoints.watching import events_or_idle, stream_filter, subscribe

log = logging.getLogger("ledgerd.access")

LAST_EVENT_ID: Final = "last-event-id"
# How long an EventSource waits before reconnecting after the stream ends (its own default is
# a few seconds, browser to browser): said once, so every browser waits the same.
RETRY_MS: Final = 2000
_PARAMETERS = ("after", "account", "type", TICKET_PARAMETER)
_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # nginx buffers answers unless told not to: events would wait for its buffer to fill.
    (b"x-accel-buffering", b"no"),
]


class ServerSentEvents:
    """The ASGI app of ``/v1/ledgers/{ledger}/events:stream``."""

    def __init__(self, edge: StreamEdge) -> None:
        self._edge = edge
        self._unexpected = ThrottledLog(log)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "use events:ws"})
            return
        headers = headers_of(scope)
        call_id = request_id_of(headers)
        if scope["method"] != "GET":
            problem = Problem(405, "METHOD_NOT_ALLOWED", "a stream is read with GET")
            await answer_problem(problem, call_id, send, ("allow", "GET"))
            return
        try:
            parameters = query_of(scope)
            refuse_unknown(parameters, _PARAMETERS)
            wanted = stream_filter(
                (value for name, value in parameters if name == "account"),
                (value for name, value in parameters if name == "type"),
            )
            resume = headers.get(LAST_EVENT_ID)
            after_text = single(parameters, "after")
            after = (
                position(resume, "Last-Event-ID")
                if resume is not None
                else None
                if after_text is None
                else position(after_text, "after")
            )
            ticket = single(parameters, TICKET_PARAMETER)
        except LedgerdError as refused:
            await answer_problem(problem_of_error(refused), call_id, send)
            return
        ledger = scope["path_params"]["ledger"]
        call = stream_call(SSE, headers, ledger, ticket)
        stream = _Stream(self._edge, send)

        async def application() -> None:
            subscription = await subscribe(
                self._edge.hub, ledger, wanted, after, self._edge.not_found
            )
            try:
                principal = current_principal()
                await stream.run(subscription, None if principal is None else principal.expires_at)
            finally:
                await subscription.aclose()

        try:
            await _while_connected(self._edge.pipeline.run(call, application), receive)
        except (LedgerdError, UnexpectedError) as ended:
            if not stream.started:
                await answer_problem(problem_of_error(ended), call.request_id, send)
                return
            await stream.end(problem_of_error(ended))
        except Exception as error:  # noqa: BLE001 - a bug of this edge: logged, then said
            self._unexpected.unexpected(error, call.request_id)
            problem = problem_of_error(UnexpectedError(call.request_id))
            if not stream.started:
                await answer_problem(problem, call.request_id, send)
                return
            await stream.end(problem)


class _Stream:
    """One response's events: headers on the first write, then events, pings, a last error."""

    def __init__(self, edge: StreamEdge, send: Send) -> None:
        self._edge = edge
        self._send = send
        self.started = False

    async def run(self, subscription: Subscription, expires_at: datetime | None) -> None:
        await self._send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        self.started = True
        await self._write(f"retry: {RETRY_MS}\n\n")
        rendered = self._edge.rendered
        events = events_or_idle(subscription, self._edge.clock, self._edge.heartbeat_s, expires_at)
        async with contextlib.aclosing(events):
            async for event in events:
                if event is None:
                    await self._write(": ping\n\n")
                    continue
                await self._write(
                    f"id: {event.sequence}\nevent: {event.type}\ndata: {rendered.json(event)}\n\n"
                )

    async def end(self, problem: Problem) -> None:
        """The last event: why the stream ends (and where to resume); then the response ends."""
        await self._write(f"event: error\ndata: {problem.json()}\n\n", more=False)

    async def _write(self, text: str, *, more: bool = True) -> None:
        await self._send({"type": "http.response.body", "body": text.encode(), "more_body": more})


async def _while_connected(streaming: Awaitable[None], receive: Receive) -> None:
    """Run ``streaming`` until it ends, or until the client disconnects (then cancel it)."""
    running = asyncio.ensure_future(streaming)
    watching = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({running, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        if not running.done():
            running.cancel()
            # The client left: how the call ended is the access log's, nobody is told.
            await asyncio.gather(running, return_exceptions=True)
    if not running.cancelled():
        running.result()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
