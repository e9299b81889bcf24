"""REST and authentication: the credentials reach the call, refusals carry RFC 6750 challenges.

The gateway is real, driven over ASGI by httpx, in-process and forwarding to a real grpc.aio
server; the Library servicer is a fake at the outer edge, and the pipeline runs the real
authentication concern with real tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import grpc
import httpx
import pytest
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2
from grpc_status import rpc_status

import ledgerd.main.error_codes  # noqa: F401 - registers LEDGER_NOT_FOUND, the hidden refusal
from ledgerd.gateway.asgi import RestGateway
from ledgerd.gateway.http_rules import http_routes
from ledgerd.gateway.invoker import ChannelInvoker, InProcessInvoker, Invoker
from ledgerd.gateway.router import Router
from ledgerd.kernel.principal import Principal
from ledgerd.ledger.application._lookups import ledger_not_found
from ledgerd.platform.api.authentication import Authentication
from ledgerd.platform.api.grpc_pipeline import PipelineInterceptor
from ledgerd.platform.api.pipeline import CallInfo, CallPipeline
from tests.unit.platform.auth.conftest import TokenBench, token_bench

T = TypeVar("T")
READ = "shelf.read"


@dataclass(frozen=True, slots=True)
class Entry:
    scope: str | None
    ledger_field: str | None = None


@dataclass
class Probe:
    """The last concern: the calls as the application would see them."""

    seen: list[CallInfo] = field(default_factory=list)

    async def __call__(self, call: CallInfo, proceed: Callable[[], Awaitable[T]]) -> T:
        self.seen.append(call)
        return await proceed()


class NoRevocations:
    async def is_revoked(self, _family_id: str) -> bool:
        return False


class NoLiveGrants:
    async def may_use_ledger(self, _principal: Principal, _ledger_id: str) -> bool:
        return False


@dataclass
class FakeLibrary:
    service: ServiceDescriptor

    async def GetShelf(self, request: Any, _context: object) -> Message:  # noqa: ANN401, N802
        shelf = GetMessageClass(self.service.methods_by_name["GetShelf"].output_type)
        return shelf(id=request.shelf_id)


@dataclass
class World:
    bench: TokenBench
    probe: Probe
    pipeline: CallPipeline
    library: FakeLibrary

    def token(self, scopes: frozenset[str] = frozenset({READ})) -> str:
        principal = Principal("client-1", scopes, frozenset({"a"}))
        return self.bench.issuer.issue(principal).token


@pytest.fixture
def world(library_service: ServiceDescriptor) -> World:
    bench, probe = token_bench(), Probe()
    authentication = Authentication(
        verifier=bench.verifier,
        revocations=NoRevocations(),
        live_grants=NoLiveGrants(),
        access={f"/{library_service.full_name}/GetShelf": Entry(READ, "shelf_id")},
        hidden={library_service.full_name: ledger_not_found},
        public_services=(),
    )
    pipeline = CallPipeline([authentication, probe])
    return World(bench, probe, pipeline, FakeLibrary(library_service))


async def _grpc_refusal(call: Awaitable[Message]) -> tuple[grpc.StatusCode, str]:
    """The status code and ErrorInfo reason a call was refused with."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    status = rpc_status.from_call(cast("grpc.Call", caught.value))
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return caught.value.code(), info.reason


async def _client(invoker: Invoker, service: ServiceDescriptor) -> httpx.AsyncClient:
    app = RestGateway(Router(http_routes(service)), invoker)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.fixture
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    service = world.library.service
    invoker = InProcessInvoker({service.full_name: world.library}, world.pipeline)
    async with await _client(invoker, service) as client:
        yield client


async def test_a_call_without_a_token_is_401_with_a_bare_bearer_challenge(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/shelves/a")
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHENTICATED"
    assert response.headers["www-authenticate"] == 'Bearer realm="ledgerd"'


@pytest.mark.parametrize("authorization", ["Bearer not.a.token", "Basic dXNlcjpwYXNz"])
async def test_a_refused_credential_is_401_invalid_token(
    client: httpx.AsyncClient, authorization: str
) -> None:
    response = await client.get("/v1/shelves/a", headers={"authorization": authorization})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="ledgerd", error="invalid_token"'
    assert "not.a.token" not in response.text


async def test_two_authorization_headers_are_refused_as_malformed(
    client: httpx.AsyncClient, world: World
) -> None:
    token = world.token()
    headers = [("authorization", f"Bearer {token}"), ("authorization", f"Bearer {token}")]
    response = await client.get("/v1/shelves/a", headers=headers)
    assert response.status_code == 401
    assert response.json()["message"] == "malformed authorization"


async def test_a_missing_scope_is_403_naming_the_scope(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = {"authorization": f"Bearer {world.token(frozenset({'other'}))}"}
    response = await client.get("/v1/shelves/a", headers=headers)
    assert response.status_code == 403
    assert response.json()["code"] == "INSUFFICIENT_SCOPE"
    assert response.headers["www-authenticate"] == (
        'Bearer realm="ledgerd", error="insufficient_scope", scope="shelf.read"'
    )


async def test_an_ungranted_ledger_is_404_as_if_it_did_not_exist(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = {"authorization": f"Bearer {world.token()}"}
    response = await client.get("/v1/shelves/b", headers=headers)
    assert response.status_code == 404
    assert response.json() == {
        "code": "LEDGER_NOT_FOUND",
        "message": "ledger b does not exist",
        "details": {"ledger": "b"},
    }
    assert "www-authenticate" not in response.headers


async def test_the_call_gets_the_credentials_and_its_request_message(
    client: httpx.AsyncClient, world: World
) -> None:
    token = world.token()
    response = await client.get("/v1/shelves/a", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    [call] = world.probe.seen
    assert call.metadata["authorization"] == f"Bearer {token}"
    assert getattr(call.request, "shelf_id", None) == "a"
    assert call.principal is not None
    assert call.principal.subject == "client-1"


async def test_a_forwarding_gateway_passes_the_credentials_to_the_server(world: World) -> None:
    service = world.library.service
    method = service.methods_by_name["GetShelf"]
    request_type = GetMessageClass(method.input_type)
    handler = grpc.method_handlers_generic_handler(
        service.full_name,
        {
            "GetShelf": grpc.unary_unary_rpc_method_handler(
                world.library.GetShelf,
                request_deserializer=request_type.FromString,
                response_serializer=lambda message: message.SerializeToString(),
            )
        },
    )
    server = grpc.aio.server(interceptors=[PipelineInterceptor(world.pipeline)])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
            await _client(ChannelInvoker(channel), service) as client,
        ):
            token = world.token()
            granted = await client.get(
                "/v1/shelves/a", headers={"authorization": f"Bearer {token}"}
            )
            refused = await client.get("/v1/shelves/a")
            scoped = await client.get(
                "/v1/shelves/a",
                headers={"authorization": f"Bearer {world.token(frozenset())}"},
            )
            direct: grpc.aio.UnaryUnaryMultiCallable[Message, Message] = channel.unary_unary(
                f"/{service.full_name}/GetShelf",
                request_serializer=lambda message: message.SerializeToString(),
            )
            statuses = [
                await _grpc_refusal(direct(request_type(shelf_id="a"), metadata=metadata))
                for metadata in (
                    (),
                    (("authorization", f"Bearer {world.token(frozenset())}"),),
                )
            ]
    finally:
        await server.stop(None)
    # Over gRPC: the statuses, with ErrorInfo as for every other error.
    assert statuses == [
        (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
        (grpc.StatusCode.PERMISSION_DENIED, "INSUFFICIENT_SCOPE"),
    ]
    assert (granted.status_code, granted.json()) == (200, {"id": "a", "theme": ""})
    assert world.probe.seen[0].metadata["authorization"] == f"Bearer {token}"
    assert world.probe.seen[0].request == request_type(shelf_id="a")
    # The server's refusals come back with the same challenges as in-process ones.
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="ledgerd"'
    assert scoped.status_code == 403
    assert 'scope="shelf.read"' in scoped.headers["www-authenticate"]
