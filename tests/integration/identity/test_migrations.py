"""The identity branch: upgraded with the rest, downgraded to base, the schema as declared."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.identity.adapters import tables
from ledgerd.main.migrations import MIGRATIONS
from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.migrations import current_revisions
from tests.integration.identity.conftest import WITH_IDENTITY

IDENTITY_TABLES = {table.name for table in tables.TABLES}


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))


def _schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, WITH_IDENTITY.metadata))


def test_identity_is_a_branch_of_its_own() -> None:
    assert WITH_IDENTITY.heads() == MIGRATIONS.heads() | {"i0001"}
    assert all(name.startswith("identity_") for name in IDENTITY_TABLES)


async def test_up_down_and_up_again_with_the_other_branches(engine: AsyncEngine) -> None:
    # A database migrated before identity was enabled: upgraded in place.
    await MIGRATIONS.upgrade(engine)
    assert await _tables(engine) & IDENTITY_TABLES == set()
    assert not await WITH_IDENTITY.is_current(engine)

    await WITH_IDENTITY.upgrade(engine)
    assert await _tables(engine) >= IDENTITY_TABLES
    assert await current_revisions(engine) == MIGRATIONS.heads() | {"i0001"}
    assert await WITH_IDENTITY.is_current(engine)

    # The identity branch alone goes down; the others stay.
    await WITH_IDENTITY.downgrade(engine, "identity@base")
    assert await _tables(engine) & IDENTITY_TABLES == set()
    assert await current_revisions(engine) == MIGRATIONS.heads()
    assert await MIGRATIONS.is_current(engine)

    await WITH_IDENTITY.upgrade(engine)
    await WITH_IDENTITY.downgrade(engine, "base")
    assert await _tables(engine) <= {"alembic_version"}
    assert await current_revisions(engine) == set()

    await WITH_IDENTITY.upgrade(engine)
    assert await WITH_IDENTITY.is_current(engine)


async def test_migrated_schema_matches_the_table_definitions(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        before = await connection.run_sync(_schema_differences)
    assert {diff[1].name for diff in before if diff[0] == "add_table"} >= IDENTITY_TABLES

    await WITH_IDENTITY.upgrade(engine)
    async with engine.connect() as connection:
        after = await connection.run_sync(_schema_differences)
    assert after == []
