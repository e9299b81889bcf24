"""How the gateway reaches a gRPC method: in-process (the default) or over a channel.

In-process, the gateway calls the very servicer object the gRPC server serves, skipping
serialisation; over a channel it forwards to a remote ledgerd (the classic gateway
deployment). Either way a domain error comes back as the same ``LedgerdError``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_status import rpc_status

from ledgerd.kernel.deadline import deadline_scope, remaining
from ledgerd.platform.api.grpc_errors import error_of


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

    def stream(
        self, method: MethodDescriptor, request: Message, options: CallOptions
    ) -> AsyncGenerator[Message, None]: ...


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
    """Calls servicer methods directly; ``servicers`` maps service full names to servicers."""

    def __init__(self, servicers: Mapping[str, object]) -> None:
        self._servicers = dict(servicers)

    def _behaviour(self, method: MethodDescriptor) -> Callable[[Message, Any], Any]:
        servicer = self._servicers[method.containing_service.full_name]
        return cast("Callable[[Message, Any], Any]", getattr(servicer, method.name))

    async def unary(
        self, method: MethodDescriptor, request: Message, options: CallOptions
    ) -> Message:
        behaviour = cast("Callable[[Message, Any], Awaitable[Message]]", self._behaviour(method))
        async with deadline_scope(options.timeout_s):
            return await behaviour(request, _LocalContext(options))

    async def stream(
        self, method: MethodDescriptor, request: Message, options: CallOptions
    ) -> AsyncGenerator[Message, None]:
        behaviour = cast(
            "Callable[[Message, Any], AsyncIterator[Message]]", self._behaviour(method)
        )
        async with deadline_scope(options.timeout_s):
            async for item in behaviour(request, _LocalContext(options)):
                yield item


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
        self, method: MethodDescriptor, request: Message, options: CallOptions
    ) -> AsyncGenerator[Message, None]:
        response_type = GetMessageClass(method.output_type)
        call: grpc.aio.UnaryStreamMultiCallable[Message, Message] = self._channel.unary_stream(
            self._path(method),
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_type.FromString,
        )
        try:
            async for item in call(request, timeout=options.timeout_s, metadata=options.metadata):
                yield item
        except grpc.aio.AioRpcError as error:
            _raise_as_domain_error(error)
            raise
