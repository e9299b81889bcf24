"""The real gRPC server, in-process on a free port, over a migrated database per backend.

The application is the one the composition root builds (``open_ledger_app``, shared with the
integration tests), with only the clock replaced, so tests decide what "now" is. Everything a
test does to the ledger goes through the generated client; the ``LedgerApp`` is there for the
one thing the API does not offer (running the expiry sweep) and for looking at the tables.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from ledgerd.main.grpc_server import RunningGrpcServer, start_grpc_server
from ledgerd.v1 import ledger_pb2_grpc
from tests.fakes.clock import ManualClock
from tests.integration.conftest import LedgerApp, open_ledger_app

if TYPE_CHECKING:
    from ledgerd.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

# How long in-flight calls may finish when a test's server stops; a healthy test has none.
STOP_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class GrpcApi:
    """A running server and a client connected to it."""

    stub: LedgerServiceAsyncStub
    channel: grpc.aio.Channel
    clock: ManualClock
    port: int
    server: RunningGrpcServer
    app: LedgerApp

    @property
    def backend(self) -> str:
        return self.app.backend


@asynccontextmanager
async def running_api(
    database_url: str, settings: Mapping[str, Any] | None = None
) -> AsyncIterator[GrpcApi]:
    """The server on a freshly migrated database at ``database_url``, and a client for it.

    ``settings``: further Settings fields (e.g. ``auth="required"``).
    """
    async with open_ledger_app(database_url, settings=settings) as app:
        server = await start_grpc_server(app.container, "127.0.0.1:0")
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                yield GrpcApi(
                    stub=ledger_pb2_grpc.LedgerServiceStub(channel),
                    channel=channel,
                    clock=app.clock,
                    port=server.port,
                    server=server,
                    app=app,
                )
        finally:
            await server.stop(STOP_GRACE_S)


@pytest.fixture
async def grpc_api(migrated_database_url: str) -> AsyncIterator[GrpcApi]:
    """The gRPC API on a fresh, migrated database; once on SQLite and once on PostgreSQL."""
    async with running_api(migrated_database_url) as api:
        yield api


@pytest.fixture
async def sqlite_grpc_api(migrated_sqlite_url: str) -> AsyncIterator[GrpcApi]:
    async with running_api(migrated_sqlite_url) as api:
        yield api


@pytest.fixture
async def postgres_grpc_api(migrated_postgres_url: str) -> AsyncIterator[GrpcApi]:
    async with running_api(migrated_postgres_url) as api:
        yield api
