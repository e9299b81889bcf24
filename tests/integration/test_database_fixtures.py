"""The database fixtures hand each test a database of its own (empty, or migrated), per backend."""

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ledgerd.main.migrations import MIGRATIONS


def _table_names(connection: Connection) -> list[str]:
    return inspect(connection).get_table_names()


async def _tables(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        return await connection.run_sync(_table_names)


async def test_postgres_databases_are_isolated(
    postgres_url: str, postgres_url_factory: Callable[[], str]
) -> None:
    other_url = postgres_url_factory()
    names = {make_url(postgres_url).database, make_url(other_url).database}
    assert len(names) == 2
    assert all(name and name.startswith("ledgerd_t_") for name in names)

    first = create_async_engine(postgres_url)
    second = create_async_engine(other_url)
    try:
        async with first.begin() as connection:
            await connection.execute(text("CREATE TABLE only_here (id integer PRIMARY KEY)"))

        assert await _tables(first) == ["only_here"]
        assert await _tables(second) == []
    finally:
        await first.dispose()
        await second.dispose()


async def test_database_url_is_an_empty_writable_database(
    database_url: str, request: pytest.FixtureRequest
) -> None:
    engine = create_async_engine(database_url)
    try:
        assert await _tables(engine) == []
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE probe (id integer PRIMARY KEY)"))
            await connection.execute(text("INSERT INTO probe (id) VALUES (1)"))
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM probe"))).scalar_one() == 1
    finally:
        await engine.dispose()

    is_postgres = engine.dialect.name == "postgresql"
    assert (request.node.get_closest_marker("postgres") is not None) is is_postgres


async def test_migrated_database_url_is_at_the_head_and_a_copy_of_its_own(
    migrated_database_url: str, request: pytest.FixtureRequest
) -> None:
    engine = create_async_engine(migrated_database_url)
    try:
        assert await MIGRATIONS.is_current(engine)
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE only_here (id integer PRIMARY KEY)"))
        assert {"ledgers", "outbox_events", "only_here"} <= set(await _tables(engine))
    finally:
        await engine.dispose()

    # What the test does to its copy never reaches the session's original, which later tests
    # are copied from.
    if engine.dialect.name == "postgresql":
        template: str = request.getfixturevalue("migrated_postgres_template")
        server: str = request.getfixturevalue("postgres_server_url")
        original_url = make_url(server).set(database=template)
    else:
        original_file: Path = request.getfixturevalue("migrated_sqlite_file")
        original_url = make_url(f"sqlite+aiosqlite:///{original_file}")
    assert make_url(migrated_database_url).database != original_url.database
    original = create_async_engine(original_url)
    try:
        assert await MIGRATIONS.is_current(original)
        assert "only_here" not in await _tables(original)
    finally:
        # Disposed at once: PostgreSQL copies no template while a session is open on it.
        await original.dispose()
