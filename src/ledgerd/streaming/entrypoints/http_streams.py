"""What the two HTTP stream edges (Server-Sent Events, WebSocket) share.

Each stream is one call of ``StreamService/WatchLedger`` through the call pipeline, as a gRPC
WatchLedger is: the access log, error classification, admission (streams take no permit) and
authentication with its ledger check apply to it once, for its whole life. The edge builds the
call from the HTTP request — its request id, its ``Authorization`` header or its ``?ticket=``,
and the ledger of its path — and runs the stream inside the pipeline.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.errors import validation_error
from ledgerd.platform.api.authentication import AUTHORIZATION_KEY
from ledgerd.platform.api.http_problems import Problem
from ledgerd.platform.api.pipeline import REQUEST_ID_KEY, CallInfo, CallPipeline, request_id_of
from ledgerd.streaming.application.hub import StreamHub
from ledgerd.streaming.entrypoints.cloud_events import RenderedEvents
from ledgerd.streaming.entrypoints.watching import NotFound
from ledgerd.v1 import streaming_pb2 as pb

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

WATCH_LEDGER: Final = f"/{pb.DESCRIPTOR.services_by_name['StreamService'].full_name}/WatchLedger"
SSE = "sse"
WEBSOCKET = "websocket"
TICKET_PARAMETER: Final = "ticket"
# The largest position a client may name: int64, as WatchLedger's `after`.
MAX_POSITION: Final = 2**63 - 1
# Filters name at most 100 accounts (``watching.MAX_ACCOUNTS``) and a few types.
_MAX_FIELDS = 256
_DIGITS = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True, slots=True)
class StreamEdge:
    """What an HTTP stream edge needs: the hub, the pipeline, the clock and how to render."""

    hub: StreamHub
    pipeline: CallPipeline
    clock: Clock
    not_found: NotFound
    rendered: RenderedEvents
    heartbeat_s: float


def headers_of(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name; repeated ones joined as HTTP joins fields."""
    joined: dict[str, list[str]] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        joined.setdefault(name, []).append(raw_value.decode("latin-1"))
    return {name: ", ".join(values) for name, values in joined.items()}


def query_of(scope: Scope) -> list[tuple[str, str]]:
    """The query's parameters in order, or VALIDATION_FAILED for one that is not UTF-8."""
    try:
        text = scope.get("query_string", b"").decode("ascii")
        return parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=_MAX_FIELDS)
    except UnicodeError:
        raise validation_error("query", "not percent-encoded UTF-8") from None
    except ValueError:
        raise validation_error("query", f"more than {_MAX_FIELDS} parameters") from None
        raise validation_error("query", "not percent-encoded UTF-8") from None


def refuse_unknown(parameters: Iterable[tuple[str, str]], known: Iterable[str]) -> None:
    allowed = frozenset(known)
    for name, _value in parameters:
        if name not in allowed:
            expected = ", ".join(sorted(allowed))
            raise validation_error(name, f"unknown query parameter; known: {expected}")


def single(parameters: Iterable[tuple[str, str]], name: str) -> str | None:
    """The one value of ``name``, None without one; VALIDATION_FAILED if given twice."""
    values = [value for key, value in parameters if key == name]
    if len(values) > 1:
        raise validation_error(name, "given more than once")
    return values[0] if values else None


def position(text: str, field: str) -> int:
    """A sequence number from a query or a header: decimal digits, at most int64's maximum."""
    if not _DIGITS.fullmatch(text) or int(text) > MAX_POSITION:
        raise validation_error(field, "a position is a sequence number: decimal digits, 0 or more")
    return int(text)


def stream_call(
    transport: str, headers: dict[str, str], ledger: str, ticket: str | None
) -> CallInfo:
    """The stream as one WatchLedger call of the pipeline: what authentication judges."""
    metadata = {REQUEST_ID_KEY: request_id_of(headers)}
    if AUTHORIZATION_KEY in headers:
        metadata[AUTHORIZATION_KEY] = headers[AUTHORIZATION_KEY]
    return CallInfo(
        method=WATCH_LEDGER,
        transport=transport,
        metadata=metadata,
        request_id=metadata[REQUEST_ID_KEY],
        timeout_s=None,  # a stream lasts as long as its client wants it, or its credentials
        request=pb.WatchLedgerRequest(ledger=ledger),
        ticket=ticket,
    )


async def answer_problem(
    problem: Problem, request_id: str, send: Send, *extra: tuple[str, str]
) -> None:
    """An HTTP answer with the problem: its status, headers and the API's JSON body."""
    headers = [
        (b"content-type", b"application/json"),
        (REQUEST_ID_KEY.encode(), request_id.encode()),
        *((name.encode(), value.encode()) for name, value in (*problem.headers.items(), *extra)),
    ]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": problem.json().encode()})
