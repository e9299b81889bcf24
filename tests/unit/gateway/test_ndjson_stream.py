"""How a streamed answer ends, whatever ends it: the gateway over a fake Library servicer.

The servicer is a fake (the outermost edge: it stands for the service behind the gateway);
everything between HTTP and it is the real gateway, driven over ASGI by httpx. A forwarding
gateway's remote server is a fake invoker (the same edge, reached over a channel).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from ledgerd.gateway.asgi import RestGateway
from ledgerd.gateway.http_rules import http_routes
from ledgerd.gateway.invoker import CallOptions, InProcessInvoker, RemoteCallError, Sink
from ledgerd.gateway.router import Router
from ledgerd.kernel.errors import LedgerdError
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.main.call_pipeline import build_call_pipeline
from ledgerd.platform.api.admission import Admission


class FakeLibrary:
    """ReadFile streams two chunks of ``files/<name>``, then fails as the name says."""

    def __init__(self, service: ServiceDescriptor) -> None:
        self._chunk = GetMessageClass(service.methods_by_name["ReadFile"].output_type)

    async def ReadFile(self, request: Any, _context: object) -> AsyncIterator[Message]:  # noqa: ANN401, N802
        name = request.path.removeprefix("files/")
        if name == "missing":
            raise LedgerdError(LedgerErrorCode.ACCOUNT_NOT_FOUND, "no such file", {"path": name})
        for part in (b"one", b"two"):
            yield self._chunk(data=part)
        if name == "broken":
            raise RuntimeError("a bug")
        if name == "refused":
            raise LedgerdError(LedgerErrorCode.ACCOUNT_FROZEN, "frozen mid-way", {"path": name})


class FakeDroppingBackend:
    """A forwarding invoker whose remote server sends two chunks, then goes away."""

    def __init__(self, service: ServiceDescriptor) -> None:
        self._chunk = GetMessageClass(service.methods_by_name["ReadFile"].output_type)

    async def unary(self, _method: object, _request: Message, _options: CallOptions) -> Message:
        raise RemoteCallError(grpc.StatusCode.UNAVAILABLE, "the backend went away")

    async def stream(
        self, _method: object, _request: Message, _options: CallOptions, sink: Sink
    ) -> None:
        for part in (b"one", b"two"):
            await sink(self._chunk(data=part))
        raise RemoteCallError(grpc.StatusCode.UNAVAILABLE, "the backend went away")


@pytest.fixture
def forwarding_client(library_service: ServiceDescriptor) -> httpx.AsyncClient:
    gateway = RestGateway(
        Router(http_routes(library_service)), FakeDroppingBackend(library_service)
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://t")


@pytest.fixture
def client(library_service: ServiceDescriptor) -> httpx.AsyncClient:
    gateway = RestGateway(
        Router(http_routes(library_service)),
        InProcessInvoker(
            {library_service.full_name: FakeLibrary(library_service)},
            build_call_pipeline(Admission(1, retry_after_s=1.0)),
        ),
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://t")


async def _lines(client: httpx.AsyncClient, name: str) -> tuple[int, list[dict[str, Any]]]:
    response = await client.get(f"/v1/files/{name}:read")
    return response.status_code, [json.loads(line) for line in response.text.splitlines()]


async def test_a_complete_stream_is_its_items(client: httpx.AsyncClient) -> None:
    status, lines = await _lines(client, "fine")
    assert status == 200
    assert lines == [{"data": "b25l"}, {"data": "dHdv"}]


async def test_an_error_before_the_first_item_keeps_its_status(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/files/missing:read")
    assert response.status_code == 404
    assert response.json()["code"] == "ACCOUNT_NOT_FOUND"


@pytest.mark.parametrize(
    ("name", "code", "message"),
    [
        ("refused", "ACCOUNT_FROZEN", "frozen mid-way"),
        ("broken", "INTERNAL", "internal error; request id "),
    ],
)
async def test_an_error_mid_stream_is_the_last_line(
    client: httpx.AsyncClient, name: str, code: str, message: str
) -> None:
    _assert_ends_with_error(*await _lines(client, name), code, message)


async def test_a_remote_failure_mid_stream_is_the_last_line(
    forwarding_client: httpx.AsyncClient,
) -> None:
    lines = await _lines(forwarding_client, "remote")
    _assert_ends_with_error(*lines, "UNAVAILABLE", "the backend went away")


def _assert_ends_with_error(
    status: int, lines: list[dict[str, Any]], code: str, message: str
) -> None:
    assert status == 200
    assert lines[:2] == [{"data": "b25l"}, {"data": "dHdv"}]
    (last,) = lines[2:]
    assert last["error"]["code"] == code
    assert last["error"]["message"].startswith(message)
