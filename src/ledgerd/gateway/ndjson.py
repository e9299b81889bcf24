"""A server-streaming RPC sent over HTTP as NDJSON, one message per line.

The first message is awaited before the status line goes out, so an error that happens at
once (an unknown account) still gets its proper status. An error later on can only end the
stream: its last line is then ``{"error": {"code", "message", "details"}}`` and the chunked
body is still terminated properly, so a client can tell a complete stream from a cut one.

The request's deadline covers the whole answer, the writes to the client included: a client
that reads slowly cannot hold the call open past it. The invoker sees to that: it runs the
writing (``_line``, the sink it is given) inside the call's deadline — in-process, inside the
call pipeline; forwarding, inside a deadline of its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from ledgerd.gateway.invoker import CallOptions, Invoker
from ledgerd.gateway.problems import problem_of
from ledgerd.gateway.transcoding import render
from ledgerd.platform.api.pipeline import REQUEST_ID_KEY
from ledgerd.platform.throttled_log import ThrottledLog

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from ledgerd.gateway.connection import ResponseTracker
    from ledgerd.gateway.http_rules import HttpRoute

log = logging.getLogger("ledgerd.access")

NDJSON = "application/x-ndjson"
# How long the closing error line may wait on a client that is not reading; past it the
# connection is dropped (the call's own work has already stopped).
CLOSING_GRACE_S = 5.0
# asyncio warns from the fifth write after a connection is lost; a turn every four lines lets
# the loop learn of it first. A turn per line cost ~14 % of an export's speed (10,000 lines).
LINES_BETWEEN_TURNS = 4


class NdjsonStream:
    def __init__(  # noqa: PLR0913 - what one streamed answer needs, all of it required
        self,
        invoker: Invoker,
        route: HttpRoute,
        options: CallOptions,
        headers: dict[str, str],
        send: ResponseTracker,
        *,
        unexpected: ThrottledLog,
    ) -> None:
        self._unexpected = unexpected
        self._invoker = invoker
        self._route = route
        self._options = options
        self._headers = headers
        self._send = send
        self._started = False
        self._lines = 0

    async def send(self, message: Message) -> int:
        """Stream the answer to ``message``; returns the HTTP status sent.

        A failure before the first line is raised, for the caller to answer with a problem.
        """
        request_id = dict(self._options.metadata).get(REQUEST_ID_KEY, "")
        try:
            await self._invoker.stream(self._route.method, message, self._options, self._item)
        except Exception as error:
            if not self._started:
                raise  # nothing sent yet: the caller answers with a problem and its status
            await self._close_with(problem_of(error, request_id, self._unexpected).body)
            return 200
        await self._start()  # an empty stream is an empty 200 body
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})
        return 200

    async def _start(self) -> None:
        if self._started:
            return
        self._started = True
        await self._send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", NDJSON.encode()),
                    *((key.encode(), value.encode()) for key, value in self._headers.items()),
                ],
            }
        )

    async def _item(self, item: Message) -> None:
        await self._line(render(item))

    async def _line(self, document: object) -> None:
        await self._start()
        body = json.dumps(document, separators=(",", ":")).encode() + b"\n"
        await self._send({"type": "http.response.body", "body": body, "more_body": True})
        # A turn for the event loop every few lines. Sending does not yield while the socket
        # takes the bytes, and a page of lines comes from memory: without these turns, a client
        # gone mid-page is learnt of only at the next page, after asyncio has warned once for
        # each line written to the dead socket (a thousand warnings, a page's worth).
        self._lines += 1
        if self._lines % LINES_BETWEEN_TURNS == 0:
            await asyncio.sleep(0)

    async def _close_with(self, failure: dict[str, object]) -> None:
        try:
            async with asyncio.timeout(CLOSING_GRACE_S):
                await self._line({"error": failure})
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            log.warning("client not reading; stream ended without its error line")
