"""The REST gateway as an ASGI application: route, transcode, invoke, render.

Nothing in here names a ledger RPC: routes come from the `google.api.http` rules and the
messages from the descriptors, so a new RPC with an annotation is served without new code.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ledgerd.gateway.http_rules import HttpRoute
from ledgerd.gateway.invoker import CallOptions, Invoker, RemoteCallError
from ledgerd.gateway.router import (
    BadPathError,
    MethodNotAllowedError,
    RouteNotFoundError,
    Router,
)
from ledgerd.gateway.transcoding import build_request, render
from ledgerd.kernel.errors import ErrorCode, LedgerdError, validation_error
from ledgerd.kernel.ids import random_id
from ledgerd.platform.api.errors import TRANSPORT, http_status_of_grpc

log = logging.getLogger("ledgerd.access")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

REQUEST_ID_HEADER = "x-request-id"
TIMEOUT_HEADER = "x-request-timeout"
GRPC_TIMEOUT_HEADER = "grpc-timeout"
NDJSON = "application/x-ndjson"
MAX_TIMEOUT_S = 3600.0
_GRPC_TIMEOUT = re.compile(r"^(\d{1,8})([HMSmun])$")
_GRPC_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def problem(
    status: int, code: str, message: str, details: dict[str, str] | None = None
) -> Response:
    return JSONResponse(
        {"code": code, "message": message, "details": details or {}}, status_code=status
    )


def _domain_problem(error: LedgerdError) -> Response:
    return problem(TRANSPORT[error.code].http, str(error.code), error.message, dict(error.details))


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
    if matched is None:
        raise validation_error(GRPC_TIMEOUT_HEADER, "must be like 500m or 2S")
    return min(MAX_TIMEOUT_S, int(matched[1]) * _GRPC_TIMEOUT_UNITS[matched[2]])


class RestGateway:
    """ASGI app serving every HTTP-annotated RPC of the routed services."""

    def __init__(self, router: Router, invoker: Invoker) -> None:
        self._router = router
        self._invoker = invoker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        supplied = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = supplied if _REQUEST_ID.fullmatch(supplied) else random_id()
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
        """Answer the request; returns the HTTP status sent."""
        headers = {REQUEST_ID_HEADER: request_id}
        try:
            raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
            match = self._router.match(request.method, raw_path.decode("latin-1"))
            options = CallOptions(
                timeout_s=request_timeout(request.headers),
                metadata=((REQUEST_ID_HEADER, request_id),),
            )
            message = build_request(
                match.route,
                path_values=match.path_variables,
                query=request.query_params.multi_items(),
                body=await request.body(),
            )
            if match.route.server_streaming:
                return await self._stream(
                    match.route,
                    message,
                    options=options,
                    headers=headers,
                    request=request,
                    send=send,
                )
            result = await self._invoker.unary(match.route.method, message, options)
            response: Response = JSONResponse(render(result))
        except LedgerdError as error:
            response = _domain_problem(error)
        except RouteNotFoundError as error:
            response = problem(404, "ROUTE_NOT_FOUND", str(error))
        except MethodNotAllowedError as error:
            response = problem(405, "METHOD_NOT_ALLOWED", str(error))
            headers["allow"] = ", ".join(error.allowed)
        except BadPathError as error:
            response = problem(400, str(ErrorCode.VALIDATION_FAILED), str(error))
        except RemoteCallError as error:
            response = problem(http_status_of_grpc(error.code), error.code.name, error.message)
        except Exception:
            log.exception("unexpected error (request %s)", request_id)
            response = problem(500, "INTERNAL", f"internal error; request id {request_id}")
        response.headers.update(headers)
        await response(request.scope, request.receive, send)
        return response.status_code

    async def _stream(  # noqa: PLR0913 - the parts of one streamed answer
        self,
        route: HttpRoute,
        message: Message,
        *,
        options: CallOptions,
        headers: dict[str, str],
        request: Request,
        send: Send,
    ) -> int:
        """Send a server-streaming RPC as NDJSON, one message per line.

        The first message is awaited before the status line goes out, so an error that
        happens at once (an unknown account) still gets its proper status. An error later
        on can only end the stream: its last line is then ``{"error": {...}}``. Everything
        runs in this task, so the request's deadline keeps applying to the whole stream.
        """
        items = aiter(self._invoker.stream(route.method, message, options))
        try:
            first: Message | None = await anext(items)
        except StopAsyncIteration:
            first = None
        except LedgerdError as error:
            response = _domain_problem(error)
            response.headers.update(headers)
            await response(request.scope, request.receive, send)
            return response.status_code
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", NDJSON.encode()),
                    *((key.encode(), value.encode()) for key, value in headers.items()),
                ],
            }
        )
        if first is not None:
            await send(
                {"type": "http.response.body", "body": _line(render(first)), "more_body": True}
            )
            try:
                async for item in items:
                    await send(
                        {
                            "type": "http.response.body",
                            "body": _line(render(item)),
                            "more_body": True,
                        }
                    )
            except LedgerdError as error:
                failure = {
                    "code": str(error.code),
                    "message": error.message,
                    "details": dict(error.details),
                }
                await send(
                    {
                        "type": "http.response.body",
                        "body": _line({"error": failure}),
                        "more_body": True,
                    }
                )
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return 200


def _line(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"
