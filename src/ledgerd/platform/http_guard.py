"""What uvicorn's HTTP/1.1 protocol lacks so that slow clients cannot hold the server.

uvicorn (h11 protocol; see docs/api.md, "Connections") bounds only the idle wait between two
requests on a kept-alive connection (``timeout_keep_alive``: armed after an answer, disarmed by
the next byte received), and the size of a request head (``h11_max_incomplete_event_size``).
Nothing bounds how long a request head or body takes to arrive: a client that sends a byte now
and then, or nothing at all after connecting, holds its connection, and a file, for ever. Its
``limit_concurrency`` does not help: it is checked only when a complete head has arrived, so a
connection that never completes one is never refused, and what it refuses still holds a file.

:class:`GuardedH11Protocol` adds the missing bounds at the protocol level, where they cover the
time before the application sees a request and every route, including those answered without
reading the body (a page, a 404):

- a request head must be complete within ``header_timeout_s`` of the connection opening, or of
  the first byte of the next request on a kept-alive connection;
- its body must be complete within ``body_timeout_s`` of the head;
- at most ``max_connections`` connections are open at once: one more is answered 503 at once
  and closed, without being read.

A request cut short by a timeout is answered 408 (unless an answer has already begun) and its
connection closed; a connection that has sent nothing is closed without a word.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle
from uvicorn.server import ServerState

log = logging.getLogger(__name__)

# A refused connection stays open this long after its 503 (or until the client closes), so that
# the client reads the answer instead of a reset (closing with unread input sends RST)...
REFUSAL_LINGER_S = 1.0
# ... but only this many at once: beyond them refusals close at once, so open files stay bounded.
MAX_LINGERING_REFUSALS = 64
RETRY_AFTER_S = 1


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The bounds on the HTTP server's connections (``LEDGERD_HTTP_*`` settings)."""

    max_connections: int
    header_timeout_s: float
    body_timeout_s: float
    idle_timeout_s: int  # uvicorn's timeout_keep_alive, whole seconds
    max_header_bytes: int  # h11's max_incomplete_event_size


@dataclass(slots=True)
class _Refusals:
    """Shared by one server's connections: refusals waiting to close, and whether at the cap."""

    lingering: int = 0
    at_cap: bool = False


def _answer(status: int, reason: str, code: str, message: str, *headers: str) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, with a problem body as the API's."""
    body = json.dumps({"code": code, "message": message, "details": {}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *headers,
    )
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """The protocol class to give ``uvicorn.Config(http=...)``, bound to ``limits``.

    The caller also passes ``timeout_keep_alive=limits.idle_timeout_s`` and
    ``h11_max_incomplete_event_size=limits.max_header_bytes`` to the config.
    """

    class BoundGuardedH11Protocol(GuardedH11Protocol):
        _limits = limits
        _refusals = _Refusals()

    return BoundGuardedH11Protocol


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and body deadlines and a cap on connections."""

    _limits: ClassVar[ConnectionLimits]
    _refusals: ClassVar[_Refusals]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._body_deadline: asyncio.TimerHandle | None = None
        self._refused = False
        self._lingering: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(  # type: ignore[override] # uvicorn narrows it to a Transport too
        self, transport: asyncio.Transport
    ) -> None:
        if len(self.connections) >= self._limits.max_connections:
            self._refuse(transport)
            return
        super().connection_made(transport)
        self._head_deadline = self.loop.call_later(
            self._limits.header_timeout_s, self._head_too_slow
        )

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read only so that closing sends FIN, not RST
        super().data_received(data)
        self._watch_deadlines()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            if self._lingering is not None:
                self._lingering.cancel()
                self._lingering = None
                self._refusals.lingering -= 1
            return
        self._cancel(head=True, body=True)
        super().connection_lost(exc)
        if len(self.connections) < self._limits.max_connections:
            self._refusals.at_cap = False

    # --- uvicorn ---------------------------------------------------------------------------

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined request may have been taken from the buffer: its deadlines start now.
        self._watch_deadlines()

    # --- the guard -------------------------------------------------------------------------

    def _watch_deadlines(self) -> None:
        """Arm or disarm the deadlines for where the client's side of the exchange now is."""
        if self.transport.is_closing():
            self._cancel(head=True, body=True)
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            # Between requests the idle timeout (uvicorn's) runs until a byte arrives; from the
            # first byte of a head, the head's own deadline.
            if self._head_deadline is None and self.conn.trailing_data[0]:
                self._head_deadline = self.loop.call_later(
                    self._limits.header_timeout_s, self._head_too_slow
                )
        elif state is h11.SEND_BODY:
            self._cancel(head=True)
            if self._body_deadline is None:
                self._body_deadline = self.loop.call_later(
                    self._limits.body_timeout_s, self._body_too_slow
                )
        else:  # the request is in (or the connection is done with, or switched away from HTTP)
            self._cancel(head=True, body=True)

    def _cancel(self, *, head: bool = False, body: bool = False) -> None:
        if head and self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        if body and self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        # Nothing received yet: no request to answer, the connection just goes.
        begun = bool(self.conn.trailing_data[0])
        message = f"the request head did not arrive within {self._limits.header_timeout_s:g} s"
        self._time_out(message if begun else None)

    def _body_too_slow(self) -> None:
        self._body_deadline = None
        cycle = cast("RequestResponseCycle | None", self.cycle)
        answered = cycle is not None and cycle.response_started
        message = f"the request body did not arrive within {self._limits.body_timeout_s:g} s"
        self._time_out(None if answered else message)

    def _time_out(self, message: str | None) -> None:
        if self.transport.is_closing():
            return
        log.debug("HTTP connection from %s closed: %s", self.client, message or "it sent nothing")
        if message is not None:
            self.transport.write(_answer(408, "Request Timeout", "REQUEST_TIMEOUT", message))
        # The application, if it is reading the body, is told the client is gone.
        self.transport.close()

    def _refuse(self, transport: asyncio.Transport) -> None:
        self._refused = True
        self.transport = transport
        limit = self._limits.max_connections
        if not self._refusals.at_cap:
            self._refusals.at_cap = True
            log.warning(
                "%d HTTP connections open, the limit (LEDGERD_HTTP_MAX_CONNECTIONS): "
                "refusing new ones with 503 until some close",
                limit,
            )
        transport.write(
            _answer(
                503,
                "Service Unavailable",
                "TOO_MANY_CONNECTIONS",
                f"the server has {limit} connections open, its limit; retry shortly",
                f"retry-after: {RETRY_AFTER_S}",
            )
        )
        if self._refusals.lingering >= MAX_LINGERING_REFUSALS or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._refusals.lingering += 1
        self._lingering = self.loop.call_later(REFUSAL_LINGER_S, transport.close)
