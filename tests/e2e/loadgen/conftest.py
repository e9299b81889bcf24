"""The real server for the load generator's tests: gRPC and REST over one fresh database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.e2e.loadgen.support import Served
from tests.e2e.rest.support import serve_rest


@pytest.fixture
async def served(migrated_database_url: str) -> AsyncIterator[Served]:
    """Once per backend (SQLite, PostgreSQL)."""
    async with serve_rest(migrated_database_url) as api:
        yield Served(api, migrated_database_url)
