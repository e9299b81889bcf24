"""The identity context's storage on a migrated database, before the context is enabled.

Identity is not in ``ENABLED_CONTEXTS`` yet, so ``MIGRATIONS`` does not build its tables: the
tests compose the history with it, as the context's description will (its own folder).
"""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.main.bounded_context import BoundedContext
from ledgerd.main.contexts import ENABLED_CONTEXTS
from ledgerd.main.migrations import migrations_for
from ledgerd.platform.db.engine import create_engine

# What the context's description will declare of its storage.
IDENTITY_STORAGE = BoundedContext(
    name="identity",
    providers=lambda: (),
    migrations=("ledgerd.identity.adapters:migrations",),
)
WITH_IDENTITY = migrations_for((*ENABLED_CONTEXTS, IDENTITY_STORAGE))


@pytest.fixture
async def identity_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh database with every table, identity's too; once per backend."""
    engine = create_engine(database_url)
    try:
        await WITH_IDENTITY.upgrade(engine)
        yield engine
    finally:
        await engine.dispose()
