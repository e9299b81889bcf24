"""The admission step of the gRPC pipeline: each call holds a permit while its method runs.

Placed inside :class:`ErrorMappingInterceptor` (after it in the server's interceptor list), so a
refusal is a ``LedgerdError`` mapped like any other — RESOURCE_EXHAUSTED with ErrorInfo
``OVERLOADED``, RetryInfo and the request id — and is logged by the access log. Services in
``exempt_services`` (health checking, reflection) take no permit: probes must be answered when
the server is full, and a health Watch stream would otherwise hold a permit for as long as it
stays open. A server-streaming call holds its permit until its last message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any, cast

import grpc

from ledgerd.platform.api.admission import Admission
from ledgerd.platform.api.grpc_handlers import DecoratingInterceptor, Handler

Context = grpc.aio.ServicerContext[Any, Any]
Unary = Callable[[Any, Context], Awaitable[Any]]
Streaming = Callable[[Any, Context], AsyncIterator[Any]]


class AdmissionInterceptor(DecoratingInterceptor):
    def __init__(self, admission: Admission, *, exempt_services: Collection[str]) -> None:
        super().__init__()
        self._admission = admission
        self._exempt = frozenset(exempt_services)

    def _decorate(self, method: str, handler: Handler) -> Handler:
        if _service_of(method) in self._exempt:
            return handler
        return self._admitted(handler)

    def _admitted(
        self, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        # The stubs type behaviours as sync callables; on a grpc.aio server they are coroutines
        # (one response) and async generators (streamed responses). Whatever the request side,
        # one message or a stream of them, the whole call runs inside the behaviour.
        codecs: dict[str, Any] = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(cast("Unary", handler.unary_unary)), **codecs
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(cast("Unary", handler.stream_unary)), **codecs
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(cast("Streaming", handler.unary_stream)), **codecs
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(cast("Streaming", handler.stream_stream)), **codecs
            )
        return handler

    def _unary(self, behaviour: Unary) -> Unary:
        admission = self._admission

        async def call(request: Any, context: Context) -> Any:  # noqa: ANN401 - any message type
            with admission.admit():
                return await behaviour(request, context)

        return call

    def _streaming(self, behaviour: Streaming) -> Streaming:
        admission = self._admission

        async def call(request: Any, context: Context) -> AsyncIterator[Any]:  # noqa: ANN401 - any message type
            with admission.admit():
                async for item in behaviour(request, context):
                    yield item

        return call


def _service_of(method: str) -> str:
    """``ledgerd.v1.LedgerService`` of ``/ledgerd.v1.LedgerService/PostTransfer``."""
    return method.removeprefix("/").partition("/")[0]
