"""The identity context's storage on a database migrated as ``ledgerd migrate`` does."""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.platform.db.engine import create_engine


@pytest.fixture
async def identity_engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh database with every table, identity's too; once per backend."""
    engine = create_engine(migrated_database_url)
    try:
        yield engine
    finally:
        await engine.dispose()
