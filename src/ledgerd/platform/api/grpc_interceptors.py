"""Server interceptors every gRPC method passes through: request id, access log, error mapping.

Domain errors become their status (with ErrorInfo) here and only here; anything unexpected
becomes INTERNAL with the request id, logged on the server (never leaked), once per kind and
interval with a count of the rest, so a failure hitting every call cannot flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import grpc

from ledgerd.kernel.deadline import deadline_scope
from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.ids import random_id
from ledgerd.platform.api.grpc_errors import rpc_status_of
from ledgerd.platform.api.grpc_handlers import DecoratingInterceptor, Handler
from ledgerd.platform.throttled_log import ThrottledLog

log = logging.getLogger("ledgerd.access")

REQUEST_ID_HEADER = "x-request-id"
_MAX_REQUEST_ID = 128

Context = grpc.aio.ServicerContext[Any, Any]
Unary = Callable[[Any, Context], Awaitable[Any]]
Streaming = Callable[[Any, Context], AsyncIterator[Any]]


def _request_id(context: Context) -> str:
    for key, value in context.invocation_metadata() or ():
        if (
            key == REQUEST_ID_HEADER
            and isinstance(value, str)
            and 0 < len(value) <= _MAX_REQUEST_ID
        ):
            return value
    return random_id()


async def _fail(
    context: Context, error: Exception, request_id: str, unexpected: ThrottledLog
) -> None:
    if isinstance(error, LedgerdError):
        # Aborting replaces the trailing metadata, so the request id goes into the status.
        await context.abort_with_status(rpc_status_of(error, ((REQUEST_ID_HEADER, request_id),)))
    unexpected.unexpected(error, request_id)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error; request id {request_id}")


def _log(
    method: str, request_id: str, started: float, context: Context, *, cancelled: bool
) -> None:
    # grpc.aio reports no code until one is set: a call that returned is OK, while one whose
    # task was cancelled (the client went away or its deadline passed) reports CANCELLED.
    code = cast("grpc.StatusCode | None", context.code())
    fallback = "CANCELLED" if cancelled else "OK"
    status = fallback if code is None else code.name
    elapsed_ms = (time.perf_counter() - started) * 1000
    log.info("grpc %s %s %.1fms request_id=%s", method, status, elapsed_ms, request_id)


def _wrap_unary(method: str, behaviour: Unary, unexpected: ThrottledLog) -> Unary:
    async def call(request: Any, context: Context) -> Any:  # noqa: ANN401 - any message type
        request_id, started = _request_id(context), time.perf_counter()
        cancelled = False
        context.set_trailing_metadata(((REQUEST_ID_HEADER, request_id),))
        try:
            async with deadline_scope(context.time_remaining()):
                return await behaviour(request, context)
        except grpc.aio.AbortError:
            raise
        except asyncio.CancelledError:
            cancelled = True
            raise
        except Exception as error:  # noqa: BLE001 - mapped or logged in _fail, which aborts
            await _fail(context, error, request_id, unexpected)
        finally:
            _log(method, request_id, started, context, cancelled=cancelled)

    return call


def _wrap_streaming(method: str, behaviour: Streaming, unexpected: ThrottledLog) -> Streaming:
    async def call(request: Any, context: Context) -> AsyncIterator[Any]:  # noqa: ANN401 - any message type
        request_id, started = _request_id(context), time.perf_counter()
        cancelled = False
        context.set_trailing_metadata(((REQUEST_ID_HEADER, request_id),))
        try:
            async with deadline_scope(context.time_remaining()):
                async for item in behaviour(request, context):
                    yield item
        except grpc.aio.AbortError:
            raise
        except asyncio.CancelledError:
            cancelled = True
            raise
        except Exception as error:  # noqa: BLE001 - mapped or logged in _fail, which aborts
            await _fail(context, error, request_id, unexpected)
        finally:
            _log(method, request_id, started, context, cancelled=cancelled)

    return call


class ErrorMappingInterceptor(DecoratingInterceptor):
    def __init__(self) -> None:
        super().__init__()
        self._unexpected = ThrottledLog(log)

    def _decorate(self, method: str, handler: Handler) -> Handler:
        return _wrap(method, handler, self._unexpected)


def _wrap(
    method: str, handler: grpc.RpcMethodHandler[Any, Any], unexpected: ThrottledLog
) -> grpc.RpcMethodHandler[Any, Any]:
    # The stubs type behaviours as sync callables; on a grpc.aio server they are coroutines
    # (unary) and async generators (server streaming).
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _wrap_unary(method, cast("Unary", handler.unary_unary), unexpected),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _wrap_streaming(method, cast("Streaming", handler.unary_stream), unexpected),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler
