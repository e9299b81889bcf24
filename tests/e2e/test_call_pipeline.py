"""Both transports pass through the same call pipeline: every RPC, gRPC and REST alike.

The application is the one ``ledgerd serve`` builds (composition root, gRPC server, REST gateway
in-process), with one change made the way the composition root intends (a dishka override): a
probe concern at the end of the served pipeline, noting every call it sees. The RPCs are not
listed by hand: they are every method of every service the gRPC server says it serves (its
reflection), and every HTTP route of those methods, so a service or method added later is
covered without touching this test.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import httpx
import pytest
from dishka import Provider, Scope, provide
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from ledgerd.gateway.http_rules import HttpRoute, http_routes
from ledgerd.main.call_pipeline import ACCESS_LOG, build_call_pipeline
from ledgerd.main.grpc_server import start_grpc_server
from ledgerd.main.http_app import build_http_app, build_invoker, resolve_servicers
from ledgerd.platform.api.admission import Admission
from ledgerd.platform.api.pipeline import GRPC, REST, CallInfo, CallPipeline
from ledgerd.v1 import ledger_pb2 as pb
from tests.integration.conftest import open_ledger_app

T = TypeVar("T")
REQUEST_ID = "x-request-id"
# Bounds, so that a broken server fails the test instead of hanging it; never measurements.
CALL_TIMEOUT_S = 10.0
STOP_GRACE_S = 5.0


@dataclass
class Probe:
    """A concern that notes each call it sees: transport, method and request id."""

    seen: list[tuple[str, str, str]] = field(default_factory=list)

    async def __call__(self, call: CallInfo, proceed: Callable[[], Awaitable[T]]) -> T:
        self.seen.append((call.transport, call.method, call.request_id))
        return await proceed()

    def calls(self, transport: str) -> dict[str, str]:
        """Method -> request id of the calls seen from ``transport``."""
        return {method: rid for seen_on, method, rid in self.seen if seen_on == transport}


class ProbedPipeline(Provider):
    """The served pipeline with ``probe`` registered after its concerns, nearest the call."""

    scope = Scope.APP

    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self._probe = probe

    @provide(override=True)
    def pipeline(self, admission: Admission) -> CallPipeline:
        return CallPipeline((*build_call_pipeline(admission).concerns, self._probe))


@dataclass(frozen=True, slots=True)
class Served:
    probe: Probe
    channel: grpc.aio.Channel
    http: httpx.AsyncClient
    services: tuple[ServiceDescriptor, ...]


@pytest.fixture
async def served(migrated_sqlite_url: str) -> AsyncIterator[Served]:
    probe = Probe()
    async with AsyncExitStack() as stack:
        app = await stack.enter_async_context(
            open_ledger_app(migrated_sqlite_url, overrides=(ProbedPipeline(probe),))
        )
        server = await start_grpc_server(app.container, "127.0.0.1:0")
        stack.push_async_callback(server.stop, STOP_GRACE_S)
        pipeline = await app.container.get(CallPipeline)
        invoker, _ = build_invoker(await resolve_servicers(app.container), None, pipeline)
        gateway = build_http_app(app.engine, invoker)
        http = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://t")
        )
        channel = await stack.enter_async_context(
            grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        )
        # The reflection client blocks, and the server runs on this loop: ask from a thread.
        names = await asyncio.wait_for(
            asyncio.to_thread(_served_services, server.port), CALL_TIMEOUT_S * 2
        )
        # The server's own descriptors (this process's pool), with their HTTP annotations.
        pool = descriptor_pool.Default()
        services = tuple(pool.FindServiceByName(name) for name in names)
        yield Served(probe, channel, http, services)


def _served_services(port: int) -> list[str]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=CALL_TIMEOUT_S)
        return list(ProtoReflectionDescriptorDatabase(channel).get_services())


def _serialized(message: Message) -> bytes:
    return message.SerializeToString()


def _path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


async def _call_over_grpc(
    channel: grpc.aio.Channel, method: MethodDescriptor, request_id: str
) -> None:
    """Call ``method`` with an empty request; whatever it answers, the call has been made.

    A stream is read to its first message (or its end): a health Watch never ends by itself.
    """
    request = GetMessageClass(method.input_type)()
    codecs: dict[str, Any] = {
        "request_serializer": _serialized,
        "response_deserializer": GetMessageClass(method.output_type).FromString,
    }
    options: dict[str, Any] = {"timeout": CALL_TIMEOUT_S, "metadata": ((REQUEST_ID, request_id),)}
    sent: Any = iter((request,)) if method.client_streaming else request
    if method.client_streaming and method.server_streaming:
        call: Any = channel.stream_stream(_path(method), **codecs)(sent, **options)
    elif method.server_streaming:
        call = channel.unary_stream(_path(method), **codecs)(sent, **options)
    elif method.client_streaming:
        call = channel.stream_unary(_path(method), **codecs)(sent, **options)
    else:
        call = channel.unary_unary(_path(method), **codecs)(sent, **options)
    try:
        await (call.read() if method.server_streaming else call)
    except grpc.aio.AioRpcError:
        pass  # refused or failed: the pipeline saw it all the same
    finally:
        call.cancel()


async def _call_over_rest(http: httpx.AsyncClient, route: HttpRoute, request_id: str) -> None:
    """Call ``route`` with a placeholder for every path variable and an empty body."""
    path = route.template.openapi_path()
    for variable in route.template.variables:
        path = path.replace(f"{{{variable.name}}}", "p")
    verb = "POST" if route.http_method == "*" else route.http_method
    body = b"{}" if route.body is not None else None
    await http.request(verb, path, content=body, headers={REQUEST_ID: request_id})


async def test_every_rpc_passes_the_same_pipeline_over_grpc_and_rest(served: Served) -> None:
    methods = [method for service in served.services for method in service.methods]
    routed = {route.method.full_name: route for s in served.services for route in http_routes(s)}
    assert "ledgerd.v1.LedgerService.PostTransfer" in routed  # the API is among them

    for method in methods:
        await _call_over_grpc(served.channel, method, f"probe-{method.name}")
    for route in routed.values():
        await _call_over_rest(served.http, route, f"probe-{route.method.name}")

    over_grpc = served.probe.calls(GRPC)
    over_rest = served.probe.calls(REST)
    assert over_grpc == {_path(method): f"probe-{method.name}" for method in methods}
    # Every routed RPC, under the same name and with the same request id as over gRPC.
    assert over_rest == {
        _path(route.method): over_grpc[_path(route.method)] for route in routed.values()
    }


REQUEST_IDS = (
    "ok-1",
    "a:b.c_d-E9",
    "y" * 128,
    "y" * 129,
    "",
    "has space",
    "slash/y",
    "semi;colon",
    'quote"',
)
GET = "/ledgerd.v1.LedgerService/GetLedger"
# Those the one rule keeps: 1-128 letters, digits and _ . : -
WELL_FORMED = frozenset(("ok-1", "a:b.c_d-E9", "y" * 128))


async def test_both_transports_keep_and_refuse_the_same_request_ids(served: Served) -> None:
    get_ledger: grpc.aio.UnaryUnaryMultiCallable[Message, bytes] = served.channel.unary_unary(
        GET, request_serializer=_serialized
    )
    kept: dict[str, list[bool]] = {}
    for sent in REQUEST_IDS:
        call = get_ledger(
            pb.GetLedgerRequest(ledger="nope"),
            metadata=((REQUEST_ID, sent),),
            timeout=CALL_TIMEOUT_S,
        )
        with pytest.raises(grpc.aio.AioRpcError):
            await call
        trailing = await call.trailing_metadata()
        assert trailing is not None
        (over_grpc,) = trailing.get_all(REQUEST_ID)
        response = await served.http.get("/v1/ledgers/nope", headers={REQUEST_ID: sent})
        kept[sent] = [over_grpc == sent, response.headers[REQUEST_ID] == sent]

    assert kept == {sent: [sent in WELL_FORMED] * 2 for sent in REQUEST_IDS}
    # And the pipeline saw what was answered: one id per call, the same on both sides.
    for transport in (GRPC, REST):
        ids = [rid for on, method, rid in served.probe.seen if on == transport and method == GET]
        assert [rid == sent for rid, sent in zip(ids, REQUEST_IDS, strict=True)] == [
            sent in WELL_FORMED for sent in REQUEST_IDS
        ]


async def test_both_transports_log_a_call_alike(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOG)
    get_ledger: grpc.aio.UnaryUnaryMultiCallable[Message, bytes] = served.channel.unary_unary(
        GET, request_serializer=_serialized
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await get_ledger(
            pb.GetLedgerRequest(ledger="nope"),
            metadata=((REQUEST_ID, "log-1"),),
            timeout=CALL_TIMEOUT_S,
        )
    await served.http.get("/v1/ledgers/nope", headers={REQUEST_ID: "log-2"})

    lines = [r.getMessage().split(" ") for r in caplog.records if r.name == ACCESS_LOG]
    calls = [line[:3] + line[4:] for line in lines if line[1] == GET]
    assert calls == [
        [GRPC, GET, "LEDGER_NOT_FOUND", "request_id=log-1"],
        [REST, GET, "LEDGER_NOT_FOUND", "request_id=log-2"],
    ]
    # The HTTP exchange has its own line too, as any request the gateway answers.
    exchanges = [line[:4] + line[5:] for line in lines if line[0] == "http"]
    assert exchanges == [["http", "GET", "/v1/ledgers/nope", "404", "request_id=log-2"]]
