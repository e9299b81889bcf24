"""The identity branch: upgraded with the rest, downgraded alone, the schema as declared."""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.identity.adapters import tables
from ledgerd.main.migrations import MIGRATIONS
from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.migrations import current_revisions

IDENTITY_TABLES = {table.name for table in tables.TABLES}
# The other branches' head: a database migrated before identity was enabled holds it alone.
BEFORE_IDENTITY = "v0004"
# Every branch's head but identity's (the outbox's, streaming's): what identity leaves alone.
OTHER_HEADS = MIGRATIONS.heads() - {"i0002"}


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))


def test_identity_is_a_branch_of_its_own() -> None:
    assert MIGRATIONS.heads() >= {BEFORE_IDENTITY, "i0002"}
    assert not any(head.startswith("i") for head in OTHER_HEADS)
    assert all(name.startswith("identity_") for name in IDENTITY_TABLES)


async def test_up_down_and_up_again_with_the_other_branches(engine: AsyncEngine) -> None:
    # A database migrated before identity was enabled: upgraded in place.
    await MIGRATIONS.upgrade(engine, BEFORE_IDENTITY)
    assert await _tables(engine) & IDENTITY_TABLES == set()
    assert not await MIGRATIONS.is_current(engine)

    await MIGRATIONS.upgrade(engine)
    assert await _tables(engine) >= IDENTITY_TABLES
    assert await current_revisions(engine) == MIGRATIONS.heads()
    assert await MIGRATIONS.is_current(engine)

    # i0002 alone goes down: the authorization codes, nothing else of identity's.
    await MIGRATIONS.downgrade(engine, "i0001")
    assert IDENTITY_TABLES - await _tables(engine) == {"identity_authorization_codes"}
    assert await current_revisions(engine) == OTHER_HEADS | {"i0001"}

    # The identity branch alone goes down; the others stay.
    await MIGRATIONS.downgrade(engine, "identity@base")
    assert await _tables(engine) & IDENTITY_TABLES == set()
    assert await current_revisions(engine) == OTHER_HEADS

    await MIGRATIONS.upgrade(engine)
    await MIGRATIONS.downgrade(engine, "base")
    assert await _tables(engine) <= {"alembic_version"}
    assert await current_revisions(engine) == set()

    await MIGRATIONS.upgrade(engine)
    assert await MIGRATIONS.is_current(engine)
