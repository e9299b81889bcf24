"""What the REST end-to-end tests share: the running servers, an HTTP client, JSON helpers.

``serve_rest`` runs the application the way ``ledgerd serve`` does — the real composition root
(only the clock replaced), the gRPC server and the REST gateway under uvicorn, each on a free
port — in the caller's event loop. With ``forwarding=True`` a second HTTP app is started whose
gateway forwards every call over gRPC to that server (``LEDGERD_GATEWAY_FORWARD_TO``), and the
client talks to that one.

``ThreadedRestServer`` runs the same stack on an event loop of its own in a thread, for
synchronous clients (schemathesis) that would otherwise block the loop the server needs.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.main.grpc_server import RunningGrpcServer, start_grpc_server
from ledgerd.main.http_app import (
    build_http_app,
    build_invoker,
    resolve_http_endpoints,
    resolve_servicers,
)
from ledgerd.main.http_server import RunningHttpServer, connection_limits, start_http_server
from ledgerd.main.settings import Settings
from ledgerd.platform.api.pipeline import CallPipeline
from ledgerd.platform.http_guard import ConnectionLimits
from tests.fakes.clock import ManualClock
from tests.integration.conftest import LedgerApp, open_ledger_app

JsonObject = dict[str, Any]

# How long in-flight calls may finish when a test's servers stop; a healthy test has none.
STOP_GRACE_S = 5.0
# Every HTTP call of a test is bounded; none should come near this.
CLIENT_TIMEOUT_S = 30.0
IN_PROCESS = "in-process"
FORWARDING = "forwarding"
REQUEST_ID = "x-request-id"
JSON_TYPE = "application/json"
NDJSON_TYPE = "application/x-ndjson"


@dataclass(frozen=True, slots=True)
class RestApi:
    """The running servers, and an HTTP client bound to the gateway under test."""

    client: httpx.AsyncClient
    base_url: str
    # "in-process": the gateway calls the servicer directly; "forwarding": over gRPC.
    gateway: str
    clock: ManualClock
    http_port: int  # the gateway the client talks to
    grpc_port: int
    app: LedgerApp
    grpc_server: RunningGrpcServer
    http_servers: tuple[RunningHttpServer, ...]

    @property
    def backend(self) -> str:
        return self.app.backend

    @property
    def engine(self) -> AsyncEngine:
        return self.app.engine


@asynccontextmanager
async def serve_rest(
    database_url: str,
    *,
    forwarding: bool = False,
    clock: ManualClock | None = None,
    settings: Mapping[str, Any] | None = None,
) -> AsyncIterator[RestApi]:
    """Start gRPC + HTTP over a freshly migrated ``database_url``; stop everything after."""
    async with AsyncExitStack() as stack:
        app = await stack.enter_async_context(
            open_ledger_app(database_url, clock=clock, settings=settings)
        )
        grpc_server = await start_grpc_server(app.container, "127.0.0.1:0")
        stack.push_async_callback(grpc_server.stop, STOP_GRACE_S)
        servicers = await resolve_servicers(app.container)
        pipeline = await app.container.get(CallPipeline)
        # The contexts' own endpoints (OAuth2, the event streams), served in-process.
        endpoints = await resolve_http_endpoints(app.container)
        served_settings = await app.container.get(Settings)

        async def start_gateway(forward_to: str | None) -> RunningHttpServer:
            invoker, channel = build_invoker(servicers, forward_to, pipeline)
            if channel is not None:
                channels.append(channel)
            http_app = build_http_app(app.engine, invoker, endpoints=endpoints)
            return await start_http_server(
                http_app,
                "127.0.0.1:0",
                STOP_GRACE_S,
                _limits(),
                heartbeat_s=served_settings.stream_heartbeat_seconds,
            )

        servers: list[RunningHttpServer] = []
        channels: list[grpc.aio.Channel] = []
        stack.push_async_callback(_stop_gateways, servers, channels)
        servers.append(await start_gateway(None))
        if forwarding:
            servers.append(await start_gateway(f"127.0.0.1:{grpc_server.port}"))
        port = servers[-1].port
        base_url = f"http://127.0.0.1:{port}"
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT_S, verify=_tls_context())
        )
        yield RestApi(
            client=client,
            base_url=base_url,
            gateway=FORWARDING if forwarding else IN_PROCESS,
            clock=app.clock,
            http_port=port,
            grpc_port=grpc_server.port,
            app=app,
            grpc_server=grpc_server,
            http_servers=tuple(servers),
        )


@functools.cache
def _limits() -> ConnectionLimits:
    """The HTTP limits ``serve`` has by default (reading the settings takes ~0.04 s)."""
    return connection_limits(Settings())


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every client: httpx would load a CA bundle for each (~0.09 s).

    The clients here speak plain HTTP and never use it.
    """
    return ssl.create_default_context()


async def _stop_gateways(
    servers: list[RunningHttpServer], channels: list[grpc.aio.Channel]
) -> None:
    """Stop the HTTP servers together, then close the channels they forwarded over.

    Together, because each stop waits ~0.2 s on uvicorn's polling whatever it has to do.
    """
    await asyncio.gather(*(server.stop() for server in servers))
    for channel in channels:
        await channel.close()


class ThreadedRestServer:
    """``serve_rest`` on its own event loop in a daemon thread; ``base_url`` once started."""

    _START_TIMEOUT_S = 60.0

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ledgerd-rest", daemon=True)
        self.base_url = ""

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(self._START_TIMEOUT_S):
            msg = "the threaded REST server did not start in time"
            raise RuntimeError(msg)
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(self._START_TIMEOUT_S)
        if self._thread.is_alive():
            msg = "the threaded REST server did not stop in time"
            raise RuntimeError(msg)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # noqa: BLE001 - re-raised in the thread that waits
            self._error = error
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve_rest(self._database_url) as api:
            self.base_url = api.base_url
            self._ready.set()
            await self._stop.wait()


# --- JSON helpers ----------------------------------------------------------------------------


def rfc3339(instant: datetime) -> str:
    """How the proto3 JSON mapping prints a Timestamp: UTC, 'Z', 0/3/6/9 fractional digits."""
    text = instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    micros = instant.microsecond
    if micros == 0:
        return text + "Z"
    if micros % 1000 == 0:
        return f"{text}.{micros // 1000:03d}Z"
    return f"{text}.{micros:06d}Z"


def json_of(response: httpx.Response) -> JsonObject:
    document = response.json()
    assert isinstance(document, dict), document
    return document


def ok(response: httpx.Response) -> JsonObject:
    """The body of a 200 JSON response (with the response shown when it is not one)."""
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(JSON_TYPE), response.headers
    return json_of(response)


def problem(response: httpx.Response, status: int, code: str) -> JsonObject:
    """Check an error response: the status, and a body of exactly ``{code, message, details}``."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(JSON_TYPE), response.headers
    body = json_of(response)
    assert set(body) == {"code", "message", "details"}, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str), body
    assert body["message"], body
    assert isinstance(body["details"], dict), body
    assert all(isinstance(value, str) for value in body["details"].values()), body
    return body


def leg(debit: str, credit: str, amount: int | str, asset: str | None = None) -> JsonObject:
    document: JsonObject = {"debit_account": debit, "credit_account": credit, "amount": amount}
    if asset is not None:
        document["asset"] = asset
    return document


def transfer_input(
    key: str,
    *legs: JsonObject,
    hold: bool = False,
    timeout_s: int | str | None = None,
    metadata: dict[str, str] | None = None,
) -> JsonObject:
    document: JsonObject = {"idempotency_key": key, "legs": list(legs)}
    if hold:
        document["pending"] = {} if timeout_s is None else {"timeout_seconds": timeout_s}
    if metadata is not None:
        document["metadata"] = metadata
    return document


def pay(key: str, debit: str, credit: str, amount: int | str) -> JsonObject:
    return transfer_input(key, leg(debit, credit, amount))


def balance(
    posted_debits: int = 0,
    posted_credits: int = 0,
    pending_debits: int = 0,
    pending_credits: int = 0,
    *,
    available: int,
) -> dict[str, str]:
    """A Balance as the API prints it: every int64 a decimal string."""
    return {
        "posted_debits": str(posted_debits),
        "posted_credits": str(posted_credits),
        "pending_debits": str(pending_debits),
        "pending_credits": str(pending_credits),
        "available": str(available),
    }


class Ledger:
    """Thin wrappers over one ledger's REST routes; each returns the raw response."""

    def __init__(self, client: httpx.AsyncClient, ledger: str) -> None:
        self.client = client
        self.id = ledger
        self.path = f"/v1/ledgers/{ledger}"

    async def create(self, name: str = "", metadata: dict[str, str] | None = None) -> JsonObject:
        return ok(
            await self.client.post(
                "/v1/ledgers", json={"id": self.id, "name": name, "metadata": metadata or {}}
            )
        )

    async def open(
        self,
        account: str,
        asset: str = "USD/2",
        *,
        flags: JsonObject | None = None,
        metadata: dict[str, str] | None = None,
    ) -> JsonObject:
        body: JsonObject = {"id": account, "asset": asset}
        if flags is not None:
            body["flags"] = flags
        if metadata is not None:
            body["metadata"] = metadata
        return ok(await self.client.post(f"{self.path}/accounts", json=body))

    async def post(self, transfer: JsonObject) -> httpx.Response:
        return await self.client.post(f"{self.path}/transfers", json=transfer)

    async def posted(self, transfer: JsonObject) -> JsonObject:
        return ok(await self.post(transfer))

    async def batch(self, transfers: list[JsonObject], *, atomic: bool = False) -> JsonObject:
        return ok(
            await self.client.post(
                f"{self.path}/transfers:batch", json={"transfers": transfers, "atomic": atomic}
            )
        )

    async def act(self, transfer_id: str, verb: str, body: JsonObject | None = None) -> JsonObject:
        """``:capture``, ``:void`` or ``:reverse`` a transfer."""
        return ok(
            await self.client.post(f"{self.path}/transfers/{transfer_id}:{verb}", json=body or {})
        )

    async def get_transfer(self, transfer_id: str) -> JsonObject:
        return ok(await self.client.get(f"{self.path}/transfers/{transfer_id}"))

    async def account(self, account: str) -> JsonObject:
        return ok(await self.client.get(f"{self.path}/accounts/{account}"))

    async def balance(self, account: str, as_of: str | None = None) -> JsonObject:
        params = {} if as_of is None else {"as_of": as_of}
        return ok(await self.client.get(f"{self.path}/accounts/{account}/balance", params=params))

    async def status(self, account: str, verb: str) -> JsonObject:
        """``:freeze``, ``:unfreeze`` or ``:close`` an account."""
        return ok(await self.client.post(f"{self.path}/accounts/{account}:{verb}", json={}))

    async def pages(self, path: str, key: str, params: dict[str, Any]) -> list[list[JsonObject]]:
        """Every page of a listing under this ledger, following ``next_page_token``."""
        pages: list[list[JsonObject]] = []
        query = dict(params)
        for _ in range(10_000):  # bounded: a listing that never ends is a failure
            page = ok(await self.client.get(f"{self.path}{path}", params=query))
            pages.append(page[key])
            if not page["next_page_token"]:
                return pages
            query["page_token"] = page["next_page_token"]
        msg = f"{path} did not stop paging"
        raise AssertionError(msg)

    async def all_transfers(self) -> list[JsonObject]:
        pages = await self.pages("/transfers", "transfers", {"page_size": 1000})
        return [item for page in pages for item in page]

    async def entries(self, account: str) -> list[JsonObject]:
        pages = await self.pages(f"/accounts/{account}/entries", "entries", {"page_size": 1000})
        return [item for page in pages for item in page]
