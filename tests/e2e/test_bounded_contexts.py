"""A context added to the list of contexts is served and run, with no other file edited.

The throwaway context below (``operations``) is what a new bounded context hands the
composition root: a provider, a gRPC service — google.longrunning's Operations, a real service
whose proto carries ``google.api.http`` annotations, so its REST routes follow — an HTTP
endpoint of its own, a background worker and a command. The test's list of contexts is the
enabled ones plus it; the shared wiring (container, gRPC server, REST gateway, the supervised
workers, the command line) is called as ``ledgerd`` calls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
import typer
from dishka import AsyncContainer, Provider, Scope, provide
from google.longrunning import (  # type: ignore[import-untyped] # no py.typed marker
    operations_proto_pb2 as operations_pb2,
)
from grpc_health.v1 import health_pb2
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as ASGIScope
from typer.core import TyperGroup
from typer.testing import CliRunner

from ledgerd.main.background import supervised, workers_for
from ledgerd.main.bounded_context import BackgroundWorker, BoundedContext, GrpcService
from ledgerd.main.cli import app, register_context_commands
from ledgerd.main.container import build_container
from ledgerd.main.contexts import ENABLED_CONTEXTS
from ledgerd.main.grpc_server import start_grpc_server
from ledgerd.main.http_app import (
    build_http_app,
    build_invoker,
    resolve_http_endpoints,
    resolve_servicers,
)
from ledgerd.main.migrations import migrations_for
from ledgerd.main.settings import Settings
from ledgerd.platform.api.pipeline import CallPipeline

OPERATIONS_SERVICE = operations_pb2.DESCRIPTOR.services_by_name["Operations"]
STOP_GRACE_S = 5.0


class FakeOperations:
    """The context's servicer: every operation is done."""

    async def GetOperation(  # noqa: N802 - the RPC's name
        self, request: operations_pb2.GetOperationRequest, _context: object
    ) -> operations_pb2.Operation:
        return operations_pb2.Operation(name=request.name, done=True)


def _add_operations(servicer: FakeOperations, server: grpc.aio.Server) -> None:
    """What a generated ``add_OperationsServicer_to_server`` does, for the one method used."""
    handler = grpc.method_handlers_generic_handler(
        OPERATIONS_SERVICE.full_name,
        {
            "GetOperation": grpc.unary_unary_rpc_method_handler(
                servicer.GetOperation,
                request_deserializer=operations_pb2.GetOperationRequest.FromString,
                response_serializer=operations_pb2.Operation.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))


@dataclass
class Ticker:
    """The context's background work: it records its lifecycle for the test to see."""

    started: bool = False
    drained: bool = False


class OperationsProvider(Provider):
    scope = Scope.APP

    servicer = provide(FakeOperations)

    @provide
    def ticker(self) -> Ticker:
        return Ticker()


@contextlib.asynccontextmanager
async def ticking(
    container: AsyncContainer, _settings: Settings, _command: str
) -> AsyncIterator[asyncio.Future[None]]:
    ticker = await container.get(Ticker)
    stop = asyncio.Event()

    task: asyncio.Task[Any] = asyncio.create_task(stop.wait())
    ticker.started = True
    try:
        yield task
    finally:
        stop.set()
        await task
        ticker.drained = True


def _operations_commands(cli: typer.Typer) -> None:
    @cli.command("operations")
    def operations() -> None:
        """List the operations (every one is done)."""
        typer.echo("all operations are done")


async def operations_feed(scope: ASGIScope, receive: Receive, send: Send) -> None:
    """The context's own HTTP endpoint: no gRPC method, any HTTP method."""
    response = PlainTextResponse(f"{scope['method']} feed: every operation is done")
    await response(scope, receive, send)


async def _operations_endpoints(_container: AsyncContainer) -> Mapping[str, ASGIApp]:
    return {"/operations/feed": operations_feed}


def _operations_providers() -> Sequence[Provider]:
    return (OperationsProvider(),)


OPERATIONS = BoundedContext(
    name="operations",
    providers=_operations_providers,
    services=(
        GrpcService(
            descriptor=OPERATIONS_SERVICE, servicer=FakeOperations, add_to_server=_add_operations
        ),
    ),
    workers=(BackgroundWorker(name="ticker", run=ticking),),
    commands=_operations_commands,
    http_endpoints=_operations_endpoints,
)
CONTEXTS = (*ENABLED_CONTEXTS, OPERATIONS)


@contextlib.asynccontextmanager
async def _container(database_url: str) -> AsyncIterator[AsyncContainer]:
    # Authentication off: this serves a context's RPCs as such (tests/security checks access).
    container = build_container(Settings(database_url=database_url, auth="off"), contexts=CONTEXTS)
    try:
        await migrations_for(CONTEXTS).upgrade(await container.get(AsyncEngine))
        yield container
    finally:
        await container.close()


async def test_a_new_contexts_service_is_served_over_grpc_and_rest(sqlite_url: str) -> None:
    async with _container(sqlite_url) as container, contextlib.AsyncExitStack() as stack:
        services = tuple(service for context in CONTEXTS for service in context.services)
        server = await start_grpc_server(container, "127.0.0.1:0", services=services)
        stack.push_async_callback(server.stop, STOP_GRACE_S)
        assert OPERATIONS_SERVICE.full_name in server.services

        channel = await stack.enter_async_context(
            grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        )
        get_operation = channel.unary_unary(
            f"/{OPERATIONS_SERVICE.full_name}/GetOperation",
            request_serializer=operations_pb2.GetOperationRequest.SerializeToString,
            response_deserializer=operations_pb2.Operation.FromString,
        )
        answer = await get_operation(operations_pb2.GetOperationRequest(name="operations/one"))
        assert (answer.name, answer.done) == ("operations/one", True)
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        status = await check(health_pb2.HealthCheckRequest(service=OPERATIONS_SERVICE.full_name))
        assert status.status == health_pb2.HealthCheckResponse.SERVING

        invoker, _ = build_invoker(
            await resolve_servicers(container, services),
            None,
            await container.get(CallPipeline),
        )
        app = build_http_app(await container.get(AsyncEngine), invoker, services)
        http = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        )
        # The route comes from the proto's annotation: get "/v1/{name=operations/**}".
        response = await http.get("/v1/operations/two")
        assert response.status_code == 200, response.text
        assert response.json() == {"name": "operations/two", "done": True}
        # The ledger is served beside it, as before.
        ledgers = await http.get("/v1/ledgers")
        assert ledgers.status_code == 200, ledgers.text


async def test_a_new_contexts_http_endpoints_are_served_beside_the_gateway(
    sqlite_url: str,
) -> None:
    async with _container(sqlite_url) as container:
        services = tuple(service for context in CONTEXTS for service in context.services)
        invoker, _ = build_invoker(
            await resolve_servicers(container, services), None, await container.get(CallPipeline)
        )
        endpoints = await resolve_http_endpoints(container, CONTEXTS)
        # The identity context's OAuth2 endpoints are there too, as `serve` mounts them.
        assert {"/operations/feed", "/oauth2/token", "/.well-known/jwks.json"} <= set(endpoints)
        app = build_http_app(await container.get(AsyncEngine), invoker, services, endpoints)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as http:
            for method in ("GET", "POST", "DELETE"):
                answer = await http.request(method, "/operations/feed")
                assert answer.status_code == 200, answer.text
                assert answer.text == f"{method} feed: every operation is done"
            # Exact paths: a longer one is the gateway's, answered in the API's error format.
            other = await http.get("/operations/feed/more")
            assert other.status_code == 404
            assert other.json()["code"] == "ROUTE_NOT_FOUND"
            # The server's own pages and the gateway answer as before.
            assert (await http.get("/healthz")).text == "ok"
            assert (await http.get("/v1/ledgers")).status_code == 200


async def test_an_http_path_claimed_twice_is_a_wiring_mistake(sqlite_url: str) -> None:
    twin = BoundedContext(name="twin", providers=lambda: (), http_endpoints=_operations_endpoints)
    async with _container(sqlite_url) as container:
        with pytest.raises(
            ValueError, match=r"claimed twice, the second time by twin: /operations/feed"
        ):
            await resolve_http_endpoints(container, (*CONTEXTS, twin))
        engine = await container.get(AsyncEngine)
        invoker, _ = build_invoker({}, None, await container.get(CallPipeline))
        with pytest.raises(ValueError, match=r"by the server's pages: /healthz"):
            build_http_app(engine, invoker, (), {"/healthz": operations_feed})


@pytest.mark.parametrize("command", ["serve", "worker"])
async def test_a_new_contexts_worker_runs_under_the_supervised_lifecycle(
    sqlite_url: str, command: str
) -> None:
    async with _container(sqlite_url) as container:
        settings = Settings(database_url=sqlite_url)
        workers = workers_for(command, settings, CONTEXTS)
        assert "ticker" in [worker.name for worker in workers]
        ticker = await container.get(Ticker)
        stop = asyncio.Event()
        async with supervised(workers, container, settings, command, stop) as supervision:
            assert (ticker.started, ticker.drained) == (True, False)
        assert ticker.drained
        assert supervision.ok
        assert not stop.is_set()


@contextlib.asynccontextmanager
async def _ends_at_once(
    _container: AsyncContainer, _settings: Settings, _command: str
) -> AsyncIterator[asyncio.Future[None]]:
    async def fail() -> None:
        msg = "the broker went away for good"
        raise RuntimeError(msg)

    task = asyncio.create_task(fail())
    yield task


async def test_a_worker_that_ends_on_its_own_stops_the_process_with_its_name(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with _container(sqlite_url) as container:
        settings = Settings(database_url=sqlite_url)
        ticker = await container.get(Ticker)
        broken = BackgroundWorker(name="broken", run=_ends_at_once)
        workers = (BackgroundWorker(name="ticker", run=ticking), broken)
        stop = asyncio.Event()
        with caplog.at_level(logging.ERROR, logger="ledgerd.main.background"):
            async with supervised(workers, container, settings, "worker", stop) as supervision:
                await stop.wait()  # as serve and worker wait for SIGTERM
        assert supervision.failed == ["broken"]
        assert ticker.drained, "the other workers drain as on SIGTERM"
        assert any(
            "background worker 'broken' ended on its own" in record.getMessage()
            and "the broker went away for good" in record.getMessage()
            for record in caplog.records
        ), caplog.text


def _command_line(contexts: Sequence[BoundedContext]) -> typer.Typer:
    """A command line made of the contexts' commands only, added as ``ledgerd`` adds them."""
    cli = typer.Typer()

    @cli.callback()
    def _root() -> None:
        """A command line with several commands."""

    register_context_commands(cli, contexts)
    return cli


def _command_names(cli: typer.Typer) -> list[str]:
    command = typer.main.get_command(cli)
    assert isinstance(command, TyperGroup)
    return list(command.commands)


def test_a_new_contexts_commands_join_the_command_line() -> None:
    cli = _command_line(CONTEXTS)
    runner = CliRunner()
    listed = runner.invoke(cli, ["--help"])
    assert listed.exit_code == 0, listed.output
    assert "operations  List the operations (every one is done)." in listed.output
    result = runner.invoke(cli, ["operations"])
    assert result.exit_code == 0, result.output
    assert result.output == "all operations are done\n"


def test_ledgerd_takes_the_enabled_contexts_commands_from_their_descriptions() -> None:
    from_descriptions = _command_names(_command_line(ENABLED_CONTEXTS))
    assert {"demo", "verify", "replay", "expire", "balance", "ledgers"} <= set(from_descriptions)
    # `ledgerd` lists the contexts' commands in the order they declare them, after the program's
    # own (typer lists commands before groups, so the program's `certs` group sits among them).
    ledgerd = _command_names(app)
    positions = [ledgerd.index(name) for name in from_descriptions]
    assert positions == sorted(positions)
    assert ledgerd.index("migrate") < positions[0]
    assert ledgerd.index("certs") < ledgerd.index("ledgers")
