"""An interceptor that decorates each method's handler once (the call pipeline's is one).

The services are registered before the server starts, so a method's handler never changes
once it serves; decorating it on every call cost a namedtuple and two closures per call, on
the path every call takes. A subclass says how to decorate; this class keeps the result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import grpc

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
# Quoted: the stubs make the class generic, the class itself is not subscriptable.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class DecoratingInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}  # method name -> its decorated handler

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[_Req, _Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[_Req, _Resp] | None:
        method = handler_call_details.method
        known = self._handlers.get(method)
        if known is not None:
            return known
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        decorated = self._decorate(method, handler)
        self._handlers[method] = decorated
        return decorated

    def _decorate(self, method: str, handler: Handler) -> Handler:
        raise NotImplementedError
