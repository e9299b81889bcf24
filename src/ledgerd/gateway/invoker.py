"""How the gateway reaches a gRPC method: in-process (the default) or over a channel.

In-process, the gateway calls the very servicer object the gRPC server serves, skipping
serialisation, inside the very call pipeline the gRPC server runs each call through
(:mod:`ledgerd.platform.api.pipeline`): request id, deadline, admission, access log and error
classification are the server's, applied once. Over a channel it forwards to a remote ledgerd
(the classic gateway deployment) as a gRPC client, and the remote server's pipeline applies.
Either way a domain error comes back as the same ``LedgerdError``.

A streamed answer is pushed: ``stream`` hands each message to ``sink`` (which writes it to the
HTTP client) and returns once the last one is sent, so what holds for the call (its deadline,
its admission permit) holds for the writing too.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_status import rpc_status

from ledgerd.kernel.deadline import deadline_scope, remaining
from ledgerd.platform.api.grpc_errors import error_of
from ledgerd.platform.api.pipeline import REST, CallInfo, CallPipeline, request_id_of

Sink = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class CallOptions:
    timeout_s: float | None = None
    metadata: tuple[tuple[str, str], ...] = field(default_factory=tuple)


class RemoteCallError(Exception):
    """A forwarded call failed with a status that carries no ledgerd error."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class Invoker(Protocol):
    async def unary(
        self, method: MethodDescriptor, request: Message, options: CallOptions
    ) -> Message: ...

    async def stream(
        self, method: MethodDescriptor, request: Message, options: CallOptions, sink: Sink
    ) -> None: ...


class _LocalContext:
    """What a servicer may ask of its call context when called in-process."""

    def __init__(self, options: CallOptions) -> None:
        self._options = options

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._options.metadata

    def time_remaining(self) -> float | None:
        return remaining()  # the deadline scope the call runs under, as it stands now

    def set_trailing_metadata(self, _metadata: object) -> None:
        return None


class InProcessInvoker:
    """Calls servicer methods directly, each inside ``pipeline``.

    ``servicers`` maps service full names to servicers.
    """

    def __init__(self, servicers: Mapping[str, object], pipeline: CallPipeline) -> None:
        self._servicers = dict(servicers)
        self._pipeline = pipeline

    def _behaviour(self, method: MethodDescriptor) -> Callable[[Message, Any], Any]:
        servicer = self._servicers[method.containing_service.full_name]
        return cast("Callable[[Message, Any], Any]", getattr(servicer, method.name))

    async def unary(
        self, method: MethodDescriptor, request: Message, options: CallOptions
    ) -> Message:
        behaviour = cast("Callable[[Message, Any], Awaitable[Message]]", self._behaviour(method))
        context = _LocalContext(options)
        return await self._pipeline.run(
            _call_info(method, request, options), lambda: behaviour(request, context)
        )

    async def stream(
        self, method: MethodDescriptor, request: Message, options: CallOptions, sink: Sink
    ) -> None:
        behaviour = cast(
            "Callable[[Message, Any], AsyncGenerator[Message, None]]", self._behaviour(method)
        )
        context = _LocalContext(options)
        await self._pipeline.run(
            _call_info(method, request, options), lambda: _drain(behaviour(request, context), sink)
        )


def _call_info(method: MethodDescriptor, request: Message, options: CallOptions) -> CallInfo:
    metadata = dict(options.metadata)
    return CallInfo(
        method=f"/{method.containing_service.full_name}/{method.name}",
        transport=REST,
        metadata=metadata,
        request_id=request_id_of(metadata),
        timeout_s=options.timeout_s,
        request=request,
    )


async def _drain(items: AsyncGenerator[Message, None], sink: Sink) -> None:
    async with contextlib.aclosing(items):
        async for item in items:
            await sink(item)


def _raise_as_domain_error(error: grpc.aio.AioRpcError) -> None:
    status = rpc_status.from_call(cast("grpc.Call", error))
    domain = error_of(status) if status is not None else None
    if domain is not None:
        raise domain from error
    raise RemoteCallError(error.code(), error.details() or "") from error


class ChannelInvoker:
    """Forwards calls to a gRPC server over ``channel``, keeping deadline and metadata."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel

    def _path(self, method: MethodDescriptor) -> str:
        return f"/{method.containing_service.full_name}/{method.name}"

    async def unary(
        self, method: MethodDescriptor, request: Message, options: CallOptions
    ) -> Message:
        response_type = GetMessageClass(method.output_type)
        call: grpc.aio.UnaryUnaryMultiCallable[Message, Message] = self._channel.unary_unary(
            self._path(method),
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_type.FromString,
        )
        try:
            return await call(request, timeout=options.timeout_s, metadata=options.metadata)
        except grpc.aio.AioRpcError as error:
            _raise_as_domain_error(error)
            raise

    async def stream(
        self, method: MethodDescriptor, request: Message, options: CallOptions, sink: Sink
    ) -> None:
        response_type = GetMessageClass(method.output_type)
        call: grpc.aio.UnaryStreamMultiCallable[Message, Message] = self._channel.unary_stream(
            self._path(method),
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_type.FromString,
        )
        # The remote server bounds its side by the timeout; this bounds the writing to the HTTP
        # client too, so a client that reads slowly cannot hold the call open past its deadline.
        async with deadline_scope(options.timeout_s):
            try:
                async for item in call(
                    request, timeout=options.timeout_s, metadata=options.metadata
                ):
                    await sink(item)
            except grpc.aio.AioRpcError as error:
                _raise_as_domain_error(error)
                raise
