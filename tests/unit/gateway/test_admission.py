"""REST calls take their permits from the same admission as gRPC: 429 OVERLOADED beyond it.

The gateway calls a fake Library servicer (the outermost edge) whose methods wait on events the
test sets; everything from HTTP down to it is the real gateway, driven over ASGI by httpx, and
the call pipeline ``ledgerd serve`` builds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from ledgerd.gateway.asgi import RestGateway
from ledgerd.gateway.http_rules import http_routes
from ledgerd.gateway.invoker import InProcessInvoker
from ledgerd.gateway.router import Router
from ledgerd.main.call_pipeline import build_call_pipeline
from ledgerd.platform.api.admission import Admission
from tests.unit.platform.api.support import Gauge

RETRY_AFTER_S = 0.25


@dataclass
class FakeHeldLibrary:
    """GetShelf answers once ``release`` is set; ReadFile sends what ``chunks`` is given."""

    service: ServiceDescriptor
    release: asyncio.Event = field(default_factory=asyncio.Event)
    end: asyncio.Event = field(default_factory=asyncio.Event)
    running: Gauge = field(default_factory=Gauge)

    async def GetShelf(self, request: Any, _context: object) -> Message:  # noqa: ANN401, N802
        self.running.add()
        try:
            await self.release.wait()
        finally:
            self.running.add(-1)
        shelf = GetMessageClass(self.service.methods_by_name["GetShelf"].output_type)
        return shelf(id=request.shelf_id)

    async def ReadFile(self, _request: Any, _context: object) -> AsyncIterator[Message]:  # noqa: ANN401, N802
        """One chunk, then the end once ``end`` is set."""
        chunk = GetMessageClass(self.service.methods_by_name["ReadFile"].output_type)
        self.running.add()
        try:
            yield chunk(data=b"one")
            await self.end.wait()
        finally:
            self.running.add(-1)


@dataclass(frozen=True, slots=True)
class Gateway:
    client: httpx.AsyncClient
    library: FakeHeldLibrary
    admission: Admission


@pytest.fixture
async def gateway(library_service: ServiceDescriptor) -> AsyncIterator[Gateway]:
    library = FakeHeldLibrary(library_service)
    admission = Admission(1, retry_after_s=RETRY_AFTER_S)
    invoker = InProcessInvoker({library_service.full_name: library}, build_call_pipeline(admission))
    app = RestGateway(Router(http_routes(library_service)), invoker)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield Gateway(client, library, admission)
    library.release.set()
    library.end.set()


def _assert_overloaded(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["code"] == "OVERLOADED"
    assert response.json()["details"] == {"retry_after_seconds": f"{RETRY_AFTER_S:g}"}
    assert response.headers["retry-after"] == "1"  # whole seconds, rounded up


async def test_a_call_over_the_limit_is_answered_429_with_retry_after(gateway: Gateway) -> None:
    held = asyncio.create_task(gateway.client.get("/v1/shelves/a"))
    await gateway.library.running.reaches(1)
    assert gateway.admission.in_flight == 1

    _assert_overloaded(await gateway.client.get("/v1/shelves/b"))
    gateway.library.release.set()
    assert (await held).json() == {"id": "a", "theme": ""}
    assert gateway.admission.in_flight == 0
    assert (await gateway.client.get("/v1/shelves/c")).json()["id"] == "c"


async def test_a_stream_holds_its_permit_until_it_ends(gateway: Gateway) -> None:
    gateway.library.release.set()
    streaming = asyncio.create_task(gateway.client.get("/v1/files/f:read"))
    await gateway.library.running.reaches(1)
    assert gateway.admission.in_flight == 1

    _assert_overloaded(await gateway.client.get("/v1/shelves/b"))
    _assert_overloaded(await gateway.client.get("/v1/files/g:read"))
    gateway.library.end.set()
    assert (await streaming).text.splitlines() == ['{"data":"b25l"}']
    assert gateway.admission.in_flight == 0
    assert (await gateway.client.get("/v1/shelves/c")).status_code == 200
