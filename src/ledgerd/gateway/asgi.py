"""The REST gateway as an ASGI application: route, transcode, invoke, render.

Nothing in here names a ledger RPC: routes come from the `google.api.http` rules and the
messages from the descriptors, so a new RPC with an annotation is served without new code.

The HTTP edge of the call pipeline (:mod:`ledgerd.platform.api.pipeline`): it settles the
request id by the pipeline's rule as soon as a request arrives (answers that never become a
call carry it too), reads the client's deadline from its headers, and passes both on with the
call; the invoker runs the call through the pipeline. Each HTTP exchange gets a line of its own
in the access log (``http GET /v1/… 200 …``), whether or not it became a call: routing and
transcoding refusals, a client gone (499). The call, if any, has its line from the pipeline.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ledgerd.gateway.connection import (
    ClientGoneError,
    ResponseTracker,
    read_body,
    while_connected,
)
from ledgerd.gateway.invoker import CallOptions, Invoker
from ledgerd.gateway.ndjson import NdjsonStream
from ledgerd.gateway.problems import problem_of
from ledgerd.gateway.router import (
    MethodNotAllowedError,
    Router,
)
from ledgerd.gateway.transcoding import MAX_BODY_BYTES, build_request, render
from ledgerd.kernel.errors import validation_error
from ledgerd.kernel.rules import ApiRules
from ledgerd.platform.api.authentication import AUTHORIZATION_KEY
from ledgerd.platform.api.pipeline import REQUEST_ID_KEY, request_id_of
from ledgerd.platform.throttled_log import ThrottledLog

log = logging.getLogger("ledgerd.access")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

TIMEOUT_HEADER = "x-request-timeout"
GRPC_TIMEOUT_HEADER = "grpc-timeout"
MAX_TIMEOUT_S = 3600.0
_GRPC_TIMEOUT = re.compile(r"^(\d{1,8})([HMSmun])$")
_GRPC_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
# nginx's convention for "the client closed the connection before the answer": logged only.
CLIENT_CLOSED_REQUEST = 499


def request_timeout(headers: MutableMapping[str, str] | Any) -> float | None:  # noqa: ANN401 - starlette Headers
    """The client's deadline: ``X-Request-Timeout`` seconds, or a gRPC-style ``grpc-timeout``."""
    text = headers.get(TIMEOUT_HEADER)
    if text is not None:
        try:
            seconds = float(text)
        except ValueError:
            raise validation_error(TIMEOUT_HEADER, "must be a number of seconds") from None
        if not 0 < seconds <= MAX_TIMEOUT_S:
            raise validation_error(TIMEOUT_HEADER, f"must be between 0 and {MAX_TIMEOUT_S:g}")
        return seconds
    text = headers.get(GRPC_TIMEOUT_HEADER)
    if text is None:
        return None
    matched = _GRPC_TIMEOUT.fullmatch(text)
    # The gRPC spec makes the value a positive integer: zero is refused like X-Request-Timeout 0.
    if matched is None or int(matched[1]) == 0:
        raise validation_error(GRPC_TIMEOUT_HEADER, "must be a positive value like 500m or 2S")
    return min(MAX_TIMEOUT_S, int(matched[1]) * _GRPC_TIMEOUT_UNITS[matched[2]])


class RestGateway:
    """ASGI app serving every HTTP-annotated RPC of the routed services."""

    def __init__(self, router: Router, invoker: Invoker, rules: ApiRules | None = None) -> None:
        self._router = router
        self._invoker = invoker
        self._rules = rules
        self._unexpected = ThrottledLog(log)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        request_id = request_id_of(request.headers)
        if request.method == "HEAD":
            send = _headers_only(send)  # HEAD is GET without the body (RFC 9110, 9.3.2)
        started = time.perf_counter()
        status = await self._serve(request, request_id, send)
        elapsed_ms = (time.perf_counter() - started) * 1000
        log.info(
            "http %s %s %d %.1fms request_id=%s",
            request.method,
            request.url.path,
            status,
            elapsed_ms,
            request_id,
        )

    async def _serve(self, request: Request, request_id: str, send: Send) -> int:
        """Answer the request; returns the HTTP status sent (499: the client left first)."""
        headers = {REQUEST_ID_KEY: request_id}
        tracker = ResponseTracker(send)
        try:
            raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
            method = "GET" if request.method == "HEAD" else request.method
            match = self._router.match(method, raw_path.decode("latin-1"))
            options = CallOptions(
                timeout_s=request_timeout(request.headers),
                metadata=_call_metadata(request, request_id),
            )
            body = await read_body(
                request.receive, MAX_BODY_BYTES, request.headers.get("content-length")
            )
            message = build_request(
                match.route,
                path_values=match.path_variables,
                query=request.query_params.multi_items(),
                body=body,
                rules=self._rules,
            )
            if match.route.server_streaming:
                stream = NdjsonStream(
                    self._invoker,
                    match.route,
                    options,
                    headers,
                    tracker,
                    unexpected=self._unexpected,
                )
                return await while_connected(stream.send(message), request.receive, tracker)
            call = self._invoker.unary(match.route.method, message, options)
            result = await while_connected(call, request.receive, tracker)
            response: Response = JSONResponse(render(result))
        except ClientGoneError:
            return CLIENT_CLOSED_REQUEST
        except Exception as error:  # noqa: BLE001 - every failure becomes a problem response
            response = problem_of(error, request_id, self._unexpected).response()
            if isinstance(error, MethodNotAllowedError):
                headers["allow"] = ", ".join(error.answered)
        response.headers.update(headers)
        await response(request.scope, request.receive, tracker)
        return response.status_code


def _call_metadata(request: Request, request_id: str) -> tuple[tuple[str, str], ...]:
    """What the call's metadata carries of the request: its id and its credentials, if any.

    Several ``Authorization`` field lines are combined as HTTP combines any field (RFC 9110,
    5.3), into one value that names more than one credential, which authentication refuses.
    """
    metadata = [(REQUEST_ID_KEY, request_id)]
    credentials = request.headers.getlist(AUTHORIZATION_KEY)
    if credentials:
        metadata.append((AUTHORIZATION_KEY, ", ".join(credentials)))
    return tuple(metadata)


def _headers_only(send: Send) -> Send:
    async def send_headers_only(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_headers_only
