"""What every call gets from the server around the ledger: request ids, health, reflection."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from ledgerd.main.bounded_context import services_of
from ledgerd.main.contexts import ENABLED_CONTEXTS
from ledgerd.v1 import ledger_pb2 as pb
from tests.e2e.grpc.conftest import GrpcApi
from tests.e2e.grpc.support import REQUEST_ID, decode

if TYPE_CHECKING:
    from grpc import _CallIterator  # what the typing stubs call a client's streaming call

LEDGER_SERVICE = "ledgerd.v1.LedgerService"
HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_SERVICE = "grpc.reflection.v1alpha.ServerReflection"
REFLECTION_V1_SERVICE = "grpc.reflection.v1.ServerReflection"
# Every enabled context's services, and the server's own.
SERVED = (
    *(service.name for service in services_of(ENABLED_CONTEXTS)),
    HEALTH_SERVICE,
    REFLECTION_V1_SERVICE,
    REFLECTION_SERVICE,
)
GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")
# Bounds for calls made from a worker thread, so a hung server fails the test instead.
THREAD_CALL_TIMEOUT_S = 10.0


def _ids(metadata: grpc.aio.Metadata | None) -> list[str]:
    assert metadata is not None
    return [str(value) for value in metadata.get_all(REQUEST_ID)]


# --- x-request-id ----------------------------------------------------------------------------


async def test_the_request_id_is_echoed_on_success_and_on_error(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    sent = (("x-request-id", "req-1234"),)

    created = stub.CreateLedger(pb.CreateLedgerRequest(id="L"), metadata=sent)
    await created
    assert _ids(await created.trailing_metadata()) == ["req-1234"]
    assert await created.code() == grpc.StatusCode.OK

    missing = stub.GetLedger(pb.GetLedgerRequest(ledger="nope"), metadata=sent)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await missing
    failed = decode(caught.value)
    assert (failed.reason, failed.trailing[REQUEST_ID]) == ("LEDGER_NOT_FOUND", "req-1234")
    assert _ids(await missing.trailing_metadata()) == ["req-1234"]


async def test_the_request_id_is_echoed_on_streams(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    await stub.CreateLedger(pb.CreateLedgerRequest(id="L"))
    await stub.CreateAccount(pb.CreateAccountRequest(ledger="L", id="a", asset="USD/2"))

    export = stub.ExportStatement(
        pb.ExportStatementRequest(ledger="L", account="a"), metadata=(("x-request-id", "s-1"),)
    )
    assert [entry async for entry in export] == []
    assert _ids(await export.trailing_metadata()) == ["s-1"]

    failing = stub.ExportStatement(
        pb.ExportStatementRequest(ledger="L", account="nope"), metadata=(("x-request-id", "s-2"),)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [entry async for entry in failing]
    failed = decode(caught.value)
    assert (failed.status, failed.reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
    assert failed.trailing[REQUEST_ID] == "s-2"


async def test_a_request_id_is_generated_when_absent_or_unusable(grpc_api: GrpcApi) -> None:
    stub = grpc_api.stub
    generated: list[str] = []
    for metadata in ((), (("x-request-id", "x" * 129),), ()):
        call = stub.CreateLedger(pb.CreateLedgerRequest(id="L"), metadata=metadata)
        await call
        (request_id,) = _ids(await call.trailing_metadata())
        generated.append(request_id)

    assert all(GENERATED_ID.fullmatch(request_id) for request_id in generated), generated
    assert len(set(generated)) == 3
    # At the limit it is still the client's.
    at_limit = stub.GetLedger(
        pb.GetLedgerRequest(ledger="L"), metadata=(("x-request-id", "y" * 128),)
    )
    await at_limit
    assert _ids(await at_limit.trailing_metadata()) == ["y" * 128]


# --- health and reflection -------------------------------------------------------------------


async def test_health_reports_serving(grpc_api: GrpcApi) -> None:
    check = grpc_api.channel.unary_unary(
        f"/{HEALTH_SERVICE}/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )

    for service in ("", LEDGER_SERVICE):
        response = await check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING, service

    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


class _AsV1(grpc.StreamStreamClientInterceptor):
    """Sends grpcio-reflection's v1alpha calls to v1, as grpcurl and Postman call first.

    The two protocols differ in their package name only, so the messages are the same bytes:
    the library's whole client (listing, files by symbol, their dependencies) talks v1.
    """

    def __init__(self) -> None:
        self.methods: list[str] = []

    def intercept_stream_stream(
        self,
        continuation: Callable[
            [grpc.ClientCallDetails, Iterator[_Request]], _CallIterator[_Response]
        ],
        client_call_details: grpc.ClientCallDetails,
        request_iterator: Iterator[_Request],
    ) -> _CallIterator[_Response]:
        method = client_call_details.method.replace(REFLECTION_SERVICE, REFLECTION_V1_SERVICE)
        self.methods.append(method)
        # grpc hands the details over as a named tuple: the same call, another method.
        details: Any = client_call_details
        return continuation(details._replace(method=method), request_iterator)


def _reflect(port: int, *, v1: bool = False) -> tuple[list[str], list[str]]:
    """Ask the server what it serves, with grpcio-reflection's own (blocking) client."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as plain:
        grpc.channel_ready_future(plain).result(timeout=THREAD_CALL_TIMEOUT_S)
        as_v1 = _AsV1()
        channel = grpc.intercept_channel(plain, as_v1) if v1 else plain
        database = ProtoReflectionDescriptorDatabase(channel)
        services = database.get_services()
        pool = descriptor_pool.DescriptorPool(database)
        methods = [m.name for m in pool.FindServiceByName(LEDGER_SERVICE).methods]
        if v1:
            # It describes itself too, as grpcurl's `describe` asks.
            assert pool.FindServiceByName(REFLECTION_V1_SERVICE).full_name
            assert set(as_v1.methods) == {f"/{REFLECTION_V1_SERVICE}/ServerReflectionInfo"}
        return services, methods


async def test_reflection_lists_the_services(grpc_api: GrpcApi) -> None:
    # The reflection client blocks, and the server runs on this loop: call it from a thread.
    services, methods = await asyncio.wait_for(
        asyncio.to_thread(_reflect, grpc_api.port), THREAD_CALL_TIMEOUT_S * 2
    )

    assert sorted(services) == sorted(SERVED)
    assert methods == [m.name for m in pb.DESCRIPTOR.services_by_name["LedgerService"].methods]


async def test_reflection_answers_v1_as_current_tools_ask(grpc_api: GrpcApi) -> None:
    services, methods = await asyncio.wait_for(
        asyncio.to_thread(_reflect, grpc_api.port, v1=True), THREAD_CALL_TIMEOUT_S * 2
    )

    assert sorted(services) == sorted(SERVED)
    assert methods == [m.name for m in pb.DESCRIPTOR.services_by_name["LedgerService"].methods]
