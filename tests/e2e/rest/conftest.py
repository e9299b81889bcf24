"""The real REST gateway under uvicorn, with the real gRPC server, on free ports.

``rest_api`` runs every test once per database backend and once per gateway mode: calling the
servicer in-process (the default) and forwarding over gRPC to the server (the classic gateway
deployment, where domain errors must survive the trip as ``google.rpc.ErrorInfo``).
``local_api`` is the in-process gateway alone, for tests about the HTTP surface itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.e2e.rest.support import FORWARDING, IN_PROCESS, RestApi, serve_rest


@pytest.fixture(params=[IN_PROCESS, FORWARDING])
async def rest_api(
    request: pytest.FixtureRequest, migrated_database_url: str
) -> AsyncIterator[RestApi]:
    """The REST API on a fresh, migrated database, through either gateway mode."""
    async with serve_rest(migrated_database_url, forwarding=request.param == FORWARDING) as api:
        yield api


@pytest.fixture
async def local_api(migrated_database_url: str) -> AsyncIterator[RestApi]:
    """The REST API with the in-process gateway only, on a fresh database per backend."""
    async with serve_rest(migrated_database_url) as api:
        yield api
