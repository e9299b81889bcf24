"""The gRPC edge of the call pipeline: one interceptor runs every method through it.

What is gRPC's stays here: the call's metadata and deadline are read from the servicer context,
the request id goes back as trailing metadata, and the pipeline's outcome becomes the status —
a domain error its code with ``google.rpc.ErrorInfo`` (and RetryInfo), a bug INTERNAL with the
request id (the pipeline has logged it). Every shape of method passes through; a streamed
answer is written from inside the pipeline, so its concerns hold until the last message.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, NoReturn, cast

import grpc
from google.protobuf.message import Message

from ledgerd.kernel.errors import LedgerdError
from ledgerd.platform.api.authentication import AUTHORIZATION_KEY
from ledgerd.platform.api.grpc_errors import rpc_status_of
from ledgerd.platform.api.grpc_handlers import DecoratingInterceptor, Handler
from ledgerd.platform.api.peer_certificates import peer_identity
from ledgerd.platform.api.pipeline import (
    GRPC,
    REQUEST_ID_KEY,
    CallAnsweredError,
    CallInfo,
    CallPipeline,
    UnexpectedError,
    request_id_of,
)

Context = grpc.aio.ServicerContext[Any, Any]
# The stubs type behaviours as sync callables; on a grpc.aio server they are coroutines (one
# response) and async generators (streamed responses), whatever the request side.
Unary = Callable[[Any, Context], Awaitable[Any]]
Streaming = Callable[[Any, Context], AsyncGenerator[Any, None]]
# A streaming method may also write its messages itself (``context.write``) and return None.
Writing = Callable[[Any, Context], Awaitable[None]]


# A handler's behaviour attribute for each shape of method, and how to make a handler of it.
_SHAPES: tuple[tuple[str, Callable[..., Handler]], ...] = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler),
    ("stream_unary", grpc.stream_unary_rpc_method_handler),
    ("unary_stream", grpc.unary_stream_rpc_method_handler),
    ("stream_stream", grpc.stream_stream_rpc_method_handler),
)


class PipelineInterceptor(DecoratingInterceptor):
    """Runs each method of the server inside ``pipeline``."""

    def __init__(self, pipeline: CallPipeline, *, peer_certificates: bool = False) -> None:
        """``peer_certificates``: the server verifies client certificates (mTLS).

        Only then is each call's peer identity read (``CallInfo.peer``): a plaintext or
        server-only TLS server has none, and need not ask grpc for its auth context per call.
        """
        super().__init__()
        self._pipeline = pipeline
        self._peer_certificates = peer_certificates

    def _decorate(self, method: str, handler: Handler) -> Handler:
        for shape, make_handler in _SHAPES:
            behaviour = getattr(handler, shape)
            if behaviour is not None:
                # Whatever the request side, one message or a stream of them, the whole call
                # runs inside the behaviour; only the response side changes how it is run.
                wrapped = (
                    self._streaming(method, behaviour)
                    if shape.endswith("_stream")
                    else self._unary(method, behaviour)
                )
                return make_handler(
                    wrapped,
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler

    def _unary(self, method: str, behaviour: Unary) -> Unary:
        async def call(request: Any, context: Context) -> Any:  # noqa: ANN401 - any message type
            return await self._run(method, context, request, lambda: behaviour(request, context))

        return call

    def _streaming(self, method: str, behaviour: Streaming | Writing) -> Writing:
        writes = _writer(behaviour)

        async def call(request: Any, context: Context) -> None:  # noqa: ANN401 - any message type
            await self._run(method, context, request, lambda: writes(request, context))

        return call

    async def _run(
        self,
        method: str,
        context: Context,
        request: object,
        respond: Callable[[], Awaitable[Any]],
    ) -> Any:  # noqa: ANN401 - any message type
        info = _begin(method, context, request)
        if self._peer_certificates:
            info.peer = peer_identity(context.auth_context())

        async def answer() -> Any:  # noqa: ANN401 - any message type
            try:
                response = await respond()
            except grpc.aio.AbortError as aborted:
                raise _answered(context, aborted) from None
            _note_own_status(info, context)
            return response

        try:
            return await self._pipeline.run(info, answer)
        except Exception as error:  # noqa: BLE001 - each kind of outcome becomes its status
            await _fail(context, error, info)


def _writer(behaviour: Streaming | Writing) -> Writing:
    """``behaviour`` as a coroutine that writes its messages itself.

    grpc.aio takes that for a streaming method as it takes an async generator; run so, the
    whole stream, its sending included, happens inside the pipeline. A behaviour that writes
    itself already (the health service's Watch) is taken as it is.
    """
    if inspect.iscoroutinefunction(behaviour):
        return cast("Writing", behaviour)
    generating = cast("Streaming", behaviour)

    async def write(request: Any, context: Context) -> None:  # noqa: ANN401 - any message type
        items = generating(request, context)
        async with contextlib.aclosing(items):
            async for item in items:
                await context.write(item)

    return write


def _begin(method: str, context: Context, request: object) -> CallInfo:
    """The call as the pipeline sees it; its request id is sent back whatever the outcome.

    ``request`` is the message of a unary-request call, or the iterator of a client stream's
    messages, which the call gets as None: they are read by the application, after it begins.
    """
    metadata: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if not isinstance(value, str):
            continue
        if key == AUTHORIZATION_KEY and key in metadata:
            # Credentials sent more than once are combined, as the REST gateway combines
            # Authorization field lines (RFC 9110 5.3): authentication sees them all and
            # refuses the pair, where keeping the first would let it pass unseen what follows.
            metadata[key] = f"{metadata[key]}, {value}"
        else:
            metadata.setdefault(key, value)
    info = CallInfo(
        method=method,
        transport=GRPC,
        metadata=metadata,
        request_id=request_id_of(metadata),
        timeout_s=context.time_remaining(),
        request=request if isinstance(request, Message) else None,
    )
    context.set_trailing_metadata(((REQUEST_ID_KEY, info.request_id),))
    return info


def _answered(context: Context, aborted: grpc.aio.AbortError) -> CallAnsweredError:
    """The servicer aborted the call itself: the pipeline lets that through as it is."""
    code = cast("grpc.StatusCode | None", context.code())
    return CallAnsweredError("ABORTED" if code is None else code.name, aborted)


def _note_own_status(info: CallInfo, context: Context) -> None:
    """A status the servicer set without aborting (health's NOT_FOUND), for the access log."""
    code = cast("grpc.StatusCode | None", context.code())
    if code is not None and code is not grpc.StatusCode.OK:
        info.answered = code.name


async def _fail(context: Context, error: Exception, info: CallInfo) -> NoReturn:
    """Finish the call with the status its outcome stands for (aborting raises)."""
    if isinstance(error, CallAnsweredError):
        raise error.answer
    if isinstance(error, LedgerdError):
        # Aborting replaces the trailing metadata, so the request id goes into the status.
        await context.abort_with_status(rpc_status_of(error, ((REQUEST_ID_KEY, info.request_id),)))
    if isinstance(error, UnexpectedError):
        await context.abort(grpc.StatusCode.INTERNAL, error.message)
    raise error  # no concern classified it: nothing of ours to say about it
