"""WebSocket: ``/v1/ledgers/{ledger}/events:ws``, several filtered subscriptions on one socket.

The socket is one WatchLedger call of the pipeline (authenticated once, by its ``Authorization``
header or its ``?ticket=``, for the ledger of its path); each subscription on it has its own
filter and position. JSON text messages, client to server::

    {"type": "subscribe", "id": "s1", "accounts": [...], "types": [...], "after": 12}
    {"type": "unsubscribe", "id": "s1"}

and server to client: ``subscribed`` and ``unsubscribed`` (with the subscription's id),
``event`` (``subscription``, ``sequence``, and ``event``: the CloudEvents JSON document),
``error`` (a refused message: ``subscription``, ``code``, ``message``, ``details``; the socket
stays open), and ``closing`` just before the server closes the socket (``code``, ``message``,
``positions``: each subscription's last sequence sent, to resume after).

Close codes: 1008 when the connection is refused (the same codes and messages as the REST API,
in an ``error`` message first) or its credentials expire; 1012 when the server shuts down;
1003 for a binary message or an unknown message type, 1007 for text that is not a JSON object;
1011 for a failure of the server's. A refused connection is accepted and then closed, rather
than refused in the handshake, because a browser sees nothing of a refused handshake but a
failure, while it does see a close code and reason. The server pings every heartbeat interval
(protocol pings, by the HTTP server) and closes a connection that does not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from ledgerd.kernel.errors import ErrorCode, LedgerdError, unavailable, validation_error
from ledgerd.kernel.principal import current_principal
from ledgerd.platform.api.http_problems import Problem, problem_of_error
from ledgerd.platform.api.pipeline import CallInfo, UnexpectedError, request_id_of
from ledgerd.platform.throttled_log import ThrottledLog
from ledgerd.streaming.application.subscription import Subscription
from ledgerd.streaming.domain.errors import StreamEndedError
from ledgerd.streaming.entrypoints.http_streams import (
    MAX_POSITION,
    TICKET_PARAMETER,
    WEBSOCKET,
    Receive,
    Scope,
    Send,
    StreamEdge,
    answer_problem,
    headers_of,
    query_of,
    refuse_unknown,
    single,
    stream_call,
)
from ledgerd.streaming.entrypoints.watching import (
    events_or_idle,
    stream_filter,
    subscribe,
)

log = logging.getLogger("ledgerd.access")

POLICY_VIOLATION: Final = 1008
SERVICE_RESTART: Final = 1012
UNSUPPORTED_DATA: Final = 1003
INVALID_DATA: Final = 1007
INTERNAL_ERROR: Final = 1011
# Enough for a dashboard's panels; each subscription is a task and a buffer on the server.
MAX_SUBSCRIPTIONS: Final = 32
MAX_SUBSCRIPTION_ID: Final = 64
# RFC 6455 5.5: a close frame's body is at most 125 bytes, 2 of them the code.
_MAX_REASON_BYTES = 123
_SUBSCRIBE_FIELDS = frozenset({"type", "id", "accounts", "types", "after"})
_UNSUBSCRIBE_FIELDS = frozenset({"type", "id"})


_RESUME = "resume each subscription after its position"


def _expired() -> LedgerdError:
    """The socket's credentials expired: one token for all its subscriptions."""
    return LedgerdError(
        ErrorCode.UNAUTHENTICATED,
        f"the access token expired during the stream; get a new one and {_RESUME}",
        {"reason": "expired"},
    )


class ClosedError(Exception):
    """The session closed the socket (a bad message): nothing more is read or sent."""


class WebSocketStreams:
    """The ASGI app of ``/v1/ledgers/{ledger}/events:ws``."""

    def __init__(self, edge: StreamEdge) -> None:
        self._edge = edge
        self._unexpected = ThrottledLog(log)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = headers_of(scope)
        if scope["type"] != "websocket":
            await _upgrade_required(request_id_of(headers), send)
            return
        if (await receive())["type"] != "websocket.connect":
            return
        socket = _Socket(send)
        try:
            parameters = query_of(scope)
            refuse_unknown(parameters, (TICKET_PARAMETER,))
            ticket = single(parameters, TICKET_PARAMETER)
        except LedgerdError as refused:
            await socket.refuse(problem_of_error(refused))
            return
        ledger = scope["path_params"]["ledger"]
        await self._serve(stream_call(WEBSOCKET, headers, ledger, ticket), ledger, socket, receive)

    async def _serve(self, call: CallInfo, ledger: str, socket: _Socket, receive: Receive) -> None:
        async def application() -> None:
            # The ledger must exist (or the grant check has already said it does not, alike).
            # Asked of the hub: no database read per connection while the ledger is watched.
            if not await self._edge.hub.ledger_exists(ledger):
                raise self._edge.not_found(ledger)
            principal = current_principal()
            expires_at = None if principal is None else principal.expires_at
            await socket.accept()
            await _Session(self._edge, ledger, socket, receive, expires_at).run()

        try:
            await self._edge.pipeline.run(call, application)
        except (LedgerdError, UnexpectedError) as ended:
            if not socket.accepted:
                await socket.refuse(problem_of_error(ended))
            # An end after the session started was said by the session itself.
        except ClosedError:
            pass  # a bad message closed the socket, saying why
        except Exception as error:  # noqa: BLE001 - a bug of this edge: logged, then said
            self._unexpected.unexpected(error, call.request_id)
            problem = problem_of_error(UnexpectedError(call.request_id))
            await socket.close(INTERNAL_ERROR, problem, {})


async def _upgrade_required(request_id: str, send: Send) -> None:
    problem = Problem(426, "UPGRADE_REQUIRED", "this path speaks WebSocket only")
    upgrade = ("upgrade", "websocket")
    await answer_problem(problem, request_id, send, upgrade, ("connection", "upgrade"))


class _Socket:
    """Sending on the socket, from the session and its subscriptions' tasks, one at a time."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._lock = asyncio.Lock()
        self.accepted = False
        self.closed = False

    async def accept(self) -> None:
        if not self.accepted:
            await self._send({"type": "websocket.accept"})
            self.accepted = True

    async def message(self, text: str) -> None:
        async with self._lock:
            if not self.closed:
                await self._send({"type": "websocket.send", "text": text})

    async def refuse(self, problem: Problem) -> None:
        """The connection is refused: an error message with the problem, then 1008."""
        await self.accept()
        await self.message(json.dumps({"type": "error", "subscription": None, **problem.body}))
        await self._close(POLICY_VIOLATION, _reason(problem))

    async def close(self, code: int, problem: Problem, positions: Mapping[str, int]) -> None:
        """The server ends the session: a ``closing`` message with the positions, then ``code``."""
        await self.accept()
        # One socket, several positions: each subscription's is in `positions`, none in details.
        details = {name: value for name, value in problem.details.items() if name != "position"}
        closing = {
            "type": "closing",
            **problem.body,
            "details": details,
            "positions": dict(positions),
        }
        await self.message(json.dumps(closing))
        await self._close(code, _reason(problem))

    async def _close(self, code: int, reason: str) -> None:
        async with self._lock:
            if not self.closed:
                self.closed = True
                with contextlib.suppress(OSError, RuntimeError):  # the client may be gone
                    await self._send({"type": "websocket.close", "code": code, "reason": reason})


def _reason(problem: Problem) -> str:
    text = f"{problem.code}: {problem.message}"
    encoded = text.encode()
    if len(encoded) <= _MAX_REASON_BYTES:
        return text
    return encoded[: _MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."


@dataclass(slots=True)
class _Forwarding:
    subscription: Subscription
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _Ending:
    """Why the session ends on the server's side: the first reason a subscription met."""

    error: LedgerdError | None = None
    happened: asyncio.Event = field(default_factory=asyncio.Event)

    def end(self, error: LedgerdError) -> None:
        if self.error is None:
            self.error = error
            self.happened.set()


class _Session:
    """One accepted socket: its subscriptions, the client's messages, how it ends."""

    def __init__(
        self,
        edge: StreamEdge,
        ledger: str,
        socket: _Socket,
        receive: Receive,
        expires_at: datetime | None,
    ) -> None:
        self._edge, self._ledger, self._socket, self._receive = edge, ledger, socket, receive
        self._expires_at = expires_at
        self._subscriptions: dict[str, _Forwarding] = {}
        self._ending = _Ending()

    async def run(self) -> None:
        ending = asyncio.ensure_future(self._ending.happened.wait())
        receiving: asyncio.Future[Any] | None = None
        try:
            while True:
                if receiving is None:
                    receiving = asyncio.ensure_future(self._receive())
                done, _ = await asyncio.wait(
                    {receiving, ending},
                    timeout=self._until_expiry(),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if ending in done or not done:
                    await self._end(self._ending.error or _expired())
                    return
                message = receiving.result()
                receiving = None
                if message["type"] == "websocket.disconnect":
                    return
                await self._handle(message)
        finally:
            for waiting in (ending, receiving):
                if waiting is not None:
                    waiting.cancel()
            await self._stop_all()

    def _until_expiry(self) -> float | None:
        if self._expires_at is None:
            return None
        return max(0.0, (self._expires_at - self._edge.clock.now()).total_seconds())

    def _positions(self) -> dict[str, int]:
        return {
            name: forwarding.subscription.delivered
            for name, forwarding in self._subscriptions.items()
        }

    async def _end(self, error: LedgerdError) -> None:
        """Close for ``error``: the positions to resume from, and the code that says why.

        The error a subscription met is said of the socket: its one token, or the server, ends
        every subscription, each resuming from its own position.
        """
        if isinstance(error, StreamEndedError):
            code = SERVICE_RESTART
            error = LedgerdError(error.code, f"{error.reason}; {_RESUME}", {"reason": error.reason})
        elif error.code == ErrorCode.UNAUTHENTICATED:
            code, error = POLICY_VIOLATION, _expired()
        else:
            code = INTERNAL_ERROR  # the event log could not be read (an outage): retry later
        await self._socket.close(code, problem_of_error(error), self._positions())
        # Raised so that the access log tells how the stream ended; the edge says no more.
        raise error

    async def _handle(self, message: Mapping[str, Any]) -> None:
        text = message.get("text")
        if not isinstance(text, str):
            raise await self._bad(UNSUPPORTED_DATA, "messages are JSON text, not binary")
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            document = None
        if not isinstance(document, dict):
            raise await self._bad(INVALID_DATA, "a message is a JSON object")
        kind = document.get("type")
        if kind == "subscribe":
            await self._subscribe(document)
        elif kind == "unsubscribe":
            await self._unsubscribe(document)
        else:
            raise await self._bad(
                UNSUPPORTED_DATA,
                f"unknown message type {str(kind)[:40]!r}: subscribe or unsubscribe",
            )

    async def _bad(self, code: int, message: str) -> ClosedError:
        """Close the socket for a bad message; the error that ends the session (to raise)."""
        problem = problem_of_error(validation_error("message", message))
        await self._socket.close(code, problem, self._positions())
        return ClosedError(message)

    async def _subscribe(self, document: dict[str, Any]) -> None:
        name = document.get("id")
        try:
            name = _subscription_id(name)
            if name in self._subscriptions:
                raise validation_error("id", f"subscription {name!r} exists on this socket")
            if len(self._subscriptions) >= MAX_SUBSCRIPTIONS:
                raise validation_error("id", f"at most {MAX_SUBSCRIPTIONS} subscriptions a socket")
            _only(document, _SUBSCRIBE_FIELDS)
            wanted = stream_filter(
                _strings(document.get("accounts", []), "accounts"),
                _strings(document.get("types", []), "types"),
            )
            after = _after(document.get("after"))
            subscription = await subscribe(
                self._edge.hub, self._ledger, wanted, after, self._edge.not_found
            )
        except LedgerdError as refused:
            await self._refused(name, refused)
            return
        forwarding = _Forwarding(subscription)
        self._subscriptions[name] = forwarding
        await self._socket.message(
            json.dumps(
                {"type": "subscribed", "subscription": name, "after": subscription.delivered}
            )
        )
        forwarding.task = asyncio.create_task(self._forward(name, subscription))

    async def _unsubscribe(self, document: dict[str, Any]) -> None:
        name = document.get("id")
        try:
            name = _subscription_id(name)
            _only(document, _UNSUBSCRIBE_FIELDS)
            forwarding = self._subscriptions.pop(name, None)
            if forwarding is None:
                raise validation_error("id", f"no subscription {name!r} on this socket")
        except LedgerdError as refused:
            await self._refused(name, refused)
            return
        await _stop(forwarding)
        await self._socket.message(
            json.dumps(
                {
                    "type": "unsubscribed",
                    "subscription": name,
                    "position": forwarding.subscription.delivered,
                }
            )
        )

    async def _refused(self, name: object, refused: LedgerdError) -> None:
        problem = problem_of_error(refused)
        answer = {"type": "error", "subscription": name if isinstance(name, str) else None}
        await self._socket.message(json.dumps({**answer, **problem.body}))

    async def _forward(self, name: str, subscription: Subscription) -> None:
        prefix = f'{{"type":"event","subscription":{json.dumps(name)},"sequence":'
        rendered = self._edge.rendered
        events = events_or_idle(
            subscription, self._edge.clock, self._edge.heartbeat_s, self._expires_at
        )
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    if event is not None:  # idle: the HTTP server's pings keep the socket
                        await self._socket.message(
                            f'{prefix}{event.sequence},"event":{rendered.json(event)}}}'
                        )
        except LedgerdError as ended:  # shutdown, expiry: the session closes the socket
            self._ending.end(ended)
        except Exception as error:  # noqa: BLE001 - told to the client, logged, never lost
            log.warning("event stream %s of ledger %s failed: %r", name, self._ledger, error)
            self._ending.end(unavailable("the ledger's event log"))

    async def _stop_all(self) -> None:
        forwardings = list(self._subscriptions.values())
        self._subscriptions.clear()
        await asyncio.gather(*(_stop(forwarding) for forwarding in forwardings))


async def _stop(forwarding: _Forwarding) -> None:
    if forwarding.task is not None:
        forwarding.task.cancel()
        await asyncio.gather(forwarding.task, return_exceptions=True)
    await forwarding.subscription.aclose()


def _subscription_id(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_SUBSCRIPTION_ID:
        raise validation_error(
            "id", f"a subscription's id is 1 to {MAX_SUBSCRIPTION_ID} characters"
        )
    return value


def _only(document: Mapping[str, object], known: frozenset[str]) -> None:
    unknown = sorted(set(document) - known)
    if unknown:
        raise validation_error(unknown[0], f"unknown field; known: {', '.join(sorted(known))}")


def _strings(value: object, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise validation_error(name, "a list of strings")
    return value


def _after(value: object) -> int | None:
    if value is None:
        return None
    # bool is an int to Python, not a position to anyone.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_POSITION:
        raise validation_error("after", "a position is a sequence number, 0 or more")
    return value
