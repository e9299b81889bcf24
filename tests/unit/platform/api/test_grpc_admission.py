"""Admission on a real grpc.aio server: the interceptor chain ``ledgerd serve`` uses, fake methods.

The methods are fakes (the outermost edge: they stand for the services) that wait on events the
test sets, so a call is in flight for exactly as long as the test decides. Everything between
the client and them — grpc.aio, the call pipeline and its interceptor — is real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from ledgerd.main.call_pipeline import build_call_pipeline
from ledgerd.platform.api.admission import Admission
from ledgerd.platform.api.grpc_pipeline import PipelineInterceptor
from tests.unit.platform.api.support import Gauge

SERVICE = "test.Held"
LIMIT = 2
RETRY_AFTER_S = 0.25
FLOOD_ITEM_BYTES = 256 * 1024
HEALTH_CODECS: dict[str, Any] = {
    "request_serializer": health_pb2.HealthCheckRequest.SerializeToString,
    "response_deserializer": health_pb2.HealthCheckResponse.FromString,
}
# Bounds, so that a broken server fails the test instead of hanging it; never measurements.
CALL_TIMEOUT_S = 10.0


@dataclass
class FakeHeldService:
    """Methods held for as long as the test decides.

    ``Wait`` answers once ``release`` is set; ``Items`` sends one item and ends on ``end``;
    ``Flood`` sends large items for as long as it may, never waiting for anything else.
    """

    release: asyncio.Event = field(default_factory=asyncio.Event)
    end: asyncio.Event = field(default_factory=asyncio.Event)
    running: Gauge = field(default_factory=Gauge)

    async def wait(self, request: bytes, _context: object) -> bytes:
        self.running.add()
        try:
            await self.release.wait()
            return request
        finally:
            self.running.add(-1)

    async def items(self, _request: bytes, _context: object) -> AsyncIterator[bytes]:
        self.running.add()
        try:
            yield b"first"
            await self.end.wait()
        finally:
            self.running.add(-1)

    async def flood(self, _request: bytes, _context: object) -> AsyncIterator[bytes]:
        self.running.add()
        try:
            while True:
                yield bytes(FLOOD_ITEM_BYTES)
        finally:
            self.running.add(-1)

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Wait": grpc.unary_unary_rpc_method_handler(self.wait),
                "Items": grpc.unary_stream_rpc_method_handler(self.items),
                "Flood": grpc.unary_stream_rpc_method_handler(self.flood),
            },
        )


@dataclass(frozen=True, slots=True)
class Running:
    admission: Admission
    service: FakeHeldService
    channel: grpc.aio.Channel

    def wait(self, payload: bytes = b"x") -> grpc.aio.UnaryUnaryCall[bytes, bytes]:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = self.channel.unary_unary(
            f"/{SERVICE}/Wait"
        )
        return call(payload, timeout=CALL_TIMEOUT_S)

    def items(self, method: str = "Items") -> grpc.aio.UnaryStreamCall[bytes, bytes]:
        call: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = self.channel.unary_stream(
            f"/{SERVICE}/{method}"
        )
        return call(b"", timeout=CALL_TIMEOUT_S)

    async def health(self) -> int:
        check: grpc.aio.UnaryUnaryMultiCallable[
            health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        ] = self.channel.unary_unary("/grpc.health.v1.Health/Check", **HEALTH_CODECS)
        response = await check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S)
        return response.status

    def watch(self) -> grpc.aio.UnaryStreamCall[Any, health_pb2.HealthCheckResponse]:
        watch: grpc.aio.UnaryStreamMultiCallable[
            health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        ] = self.channel.unary_stream("/grpc.health.v1.Health/Watch", **HEALTH_CODECS)
        return watch(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S)


@asynccontextmanager
async def _serving() -> AsyncIterator[Running]:
    admission = Admission(LIMIT, retry_after_s=RETRY_AFTER_S)
    service = FakeHeldService()
    server = grpc.aio.server(interceptors=[PipelineInterceptor(build_call_pipeline(admission))])
    server.add_generic_rpc_handlers((service.handler(),))
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Running(admission, service, channel)
    finally:
        service.release.set()
        service.end.set()
        await server.stop(None)


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    async with _serving() as served:
        yield served


def _overloaded(error: grpc.aio.AioRpcError) -> tuple[str, str, float]:
    """The refusal's ErrorInfo reason and domain and RetryInfo delay; fails if any is missing."""
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, error
    status = rpc_status.from_call(cast("grpc.Call", error))
    assert status is not None, error
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    unpacked = {detail.type_url.rpartition("/")[2]: detail for detail in status.details}
    assert unpacked["google.rpc.ErrorInfo"].Unpack(info)
    assert unpacked["google.rpc.RetryInfo"].Unpack(retry)
    return info.reason, info.domain, retry.retry_delay.ToMilliseconds() / 1000


async def _refused(call: Any) -> tuple[str, str, float]:  # noqa: ANN401 - any aio call
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return _overloaded(caught.value)


async def test_the_call_over_the_limit_is_refused_with_error_info_and_retry_info(
    running: Running,
) -> None:
    held = [running.wait(b"a"), running.wait(b"b")]
    await running.service.running.reaches(LIMIT)

    assert await _refused(running.wait()) == ("OVERLOADED", "ledgerd", RETRY_AFTER_S)
    running.service.release.set()
    assert [await call for call in held] == [b"a", b"b"]
    # The permits came back: calls are admitted again.
    assert await running.wait(b"c") == b"c"
    assert running.admission.in_flight == 0


async def test_a_running_stream_holds_a_permit_until_it_ends(running: Running) -> None:
    streams = [running.items(), running.items()]
    assert [await stream.read() for stream in streams] == [b"first", b"first"]
    assert running.admission.in_flight == LIMIT

    await _refused(running.wait())
    streams[1].cancel()  # its client went away
    await running.service.running.reaches(1)
    running.service.end.set()
    assert await streams[0].read() is grpc.aio.EOF
    assert running.admission.in_flight == 0
    running.service.release.set()
    assert await running.wait(b"in") == b"in"


async def test_health_checks_are_answered_while_every_permit_is_taken(running: Running) -> None:
    held = [running.wait(), running.wait()]
    await running.service.running.reaches(LIMIT)
    await _refused(running.wait())

    assert await running.health() == health_pb2.HealthCheckResponse.SERVING
    assert running.admission.in_flight == LIMIT  # the check took no permit
    running.service.release.set()
    await asyncio.gather(*held)


async def test_a_call_the_client_cancels_gives_its_permit_back(running: Running) -> None:
    held = running.wait()
    await running.service.running.reaches(1)
    assert running.admission.in_flight == 1
    held.cancel()
    await running.service.running.reaches(0)
    assert running.admission.in_flight == 0
    running.service.release.set()
    assert [await running.wait(b"1"), await running.wait(b"2")] == [b"1", b"2"]


async def test_a_stream_cancelled_while_its_client_is_not_reading_gives_its_permit_back(
    running: Running,
) -> None:
    """Cancelled while suspended between items, with nothing running in it.

    Its writes wait on a client that stopped reading; its permit must come back all the same.
    """
    stream = running.items("Flood")
    assert await stream.read() == bytes(FLOOD_ITEM_BYTES)
    assert running.admission.in_flight == 1
    stream.cancel()
    await running.service.running.reaches(0)
    assert running.admission.in_flight == 0


async def test_a_health_watch_streams_its_status_through_the_pipeline(running: Running) -> None:
    """The health service's Watch writes its messages itself: a coroutine, not a generator."""
    call = running.watch()
    first = await call.read()
    assert isinstance(first, health_pb2.HealthCheckResponse)
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    assert running.admission.in_flight == 0  # a probe: no permit, even while it stays open
    call.cancel()
