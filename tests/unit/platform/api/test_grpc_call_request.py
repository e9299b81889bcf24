"""The gRPC edge gives the pipeline the call's request message: one request, or None for a stream.

A real grpc.aio server with the pipeline interceptor; the methods are fakes at the outer edge.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2

from ledgerd.platform.api.grpc_pipeline import PipelineInterceptor
from ledgerd.platform.api.pipeline import CallInfo, CallPipeline

T = TypeVar("T")
SERVICE = "test.Echo"
Request = health_pb2.HealthCheckRequest
CODECS: dict[str, Any] = {
    "request_deserializer": Request.FromString,
    "response_serializer": Request.SerializeToString,
}
CALL_TIMEOUT_S = 10.0  # a bound, so that a broken server fails the test instead of hanging it


@dataclass
class Probe:
    requests: dict[str, object | None] = field(default_factory=dict)

    async def __call__(self, call: CallInfo, proceed: Callable[[], Awaitable[T]]) -> T:
        self.requests[call.method] = call.request
        return await proceed()


async def _one(request: Request, _context: object) -> Request:
    return request


async def _many(request: Request, _context: object) -> AsyncIterator[Request]:
    yield request


async def _gather(requests: AsyncIterator[Request], _context: object) -> Request:
    return Request(service=",".join([request.service async for request in requests]))


async def test_unary_requests_reach_the_pipeline_and_client_streams_do_not() -> None:
    probe = Probe()
    server = grpc.aio.server(interceptors=[PipelineInterceptor(CallPipeline([probe]))])
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "One": grpc.unary_unary_rpc_method_handler(_one, **CODECS),
            "Many": grpc.unary_stream_rpc_method_handler(_many, **CODECS),
            "Gather": grpc.stream_unary_rpc_method_handler(_gather, **CODECS),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    codecs: dict[str, Any] = {
        "request_serializer": Request.SerializeToString,
        "response_deserializer": Request.FromString,
    }
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            one: grpc.aio.UnaryUnaryMultiCallable[Request, Request] = channel.unary_unary(
                f"/{SERVICE}/One", **codecs
            )
            many: grpc.aio.UnaryStreamMultiCallable[Request, Request] = channel.unary_stream(
                f"/{SERVICE}/Many", **codecs
            )
            gather: grpc.aio.StreamUnaryMultiCallable[Request, Request] = channel.stream_unary(
                f"/{SERVICE}/Gather", **codecs
            )
            assert await one(Request(service="a"), timeout=CALL_TIMEOUT_S) == Request(service="a")
            assert [item async for item in many(Request(service="b"), timeout=CALL_TIMEOUT_S)]
            gathered = await gather(iter([Request(service="c")]), timeout=CALL_TIMEOUT_S)
            assert gathered == Request(service="c")
    finally:
        await server.stop(None)
    assert probe.requests == {
        f"/{SERVICE}/One": Request(service="a"),
        f"/{SERVICE}/Many": Request(service="b"),
        f"/{SERVICE}/Gather": None,
    }


@dataclass
class MetadataProbe:
    seen: list[dict[str, str]] = field(default_factory=list)

    async def __call__(self, call: CallInfo, proceed: Callable[[], Awaitable[T]]) -> T:
        self.seen.append(dict(call.metadata))
        return await proceed()


async def test_credentials_sent_twice_reach_the_pipeline_combined_as_http_combines_them() -> None:
    # Keeping the first alone would let a call pass on it with a second never looked at; the
    # REST gateway combines repeated Authorization lines the same way, so both refuse alike.
    probe = MetadataProbe()
    server = grpc.aio.server(interceptors=[PipelineInterceptor(CallPipeline([probe]))])
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"One": grpc.unary_unary_rpc_method_handler(_one, **CODECS)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            one: grpc.aio.UnaryUnaryMultiCallable[Request, Request] = channel.unary_unary(
                f"/{SERVICE}/One",
                request_serializer=Request.SerializeToString,
                response_deserializer=Request.FromString,
            )
            metadata = (
                ("authorization", "Bearer first"),
                ("x-other", "kept"),
                ("authorization", "Bearer second"),
                ("x-other", "dropped"),
            )
            await one(Request(), metadata=metadata, timeout=CALL_TIMEOUT_S)
    finally:
        await server.stop(None)

    (seen,) = probe.seen
    assert seen["authorization"] == "Bearer first, Bearer second"
    # Any other key keeps its first value, as before.
    assert seen["x-other"] == "kept"
