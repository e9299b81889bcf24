"""The SQL unit of work: one transaction per block, rolled back unless committed."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledgerd.kernel.errors import ConcurrencyConflictError
from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork, current_connection

WRITERS = 8
# An upper bound on waiting for something that should happen at once, so a bug hangs no run.
WAIT_LIMIT_S = 30
_CREATE_ITEMS = "CREATE TABLE items (id integer PRIMARY KEY, parent integer REFERENCES items(id))"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(text(_CREATE_ITEMS))
    yield engine
    await engine.dispose()


@pytest.fixture
def uow(engine: AsyncEngine) -> SqlAlchemyUnitOfWork:
    return SqlAlchemyUnitOfWork(engine)


async def _insert_item(item_id: int, parent: int | None = None) -> None:
    await current_connection().execute(
        text("INSERT INTO items (id, parent) VALUES (:id, :parent)"),
        {"id": item_id, "parent": parent},
    )


async def _commit_items(
    uow: SqlAlchemyUnitOfWork, *item_ids: int, parent: int | None = None
) -> None:
    async with uow.begin() as tx:
        for item_id in item_ids:
            await _insert_item(item_id, parent)
        await tx.commit()


async def _items(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT id FROM items ORDER BY id"))
        return [row.id for row in rows]


async def test_commit_makes_the_work_durable(
    uow: SqlAlchemyUnitOfWork, engine: AsyncEngine
) -> None:
    async with uow.begin() as tx:
        await _insert_item(1)
        await _insert_item(2)
        await tx.commit()
    assert await _items(engine) == [1, 2]


async def test_leaving_the_block_without_commit_rolls_back(
    uow: SqlAlchemyUnitOfWork, engine: AsyncEngine
) -> None:
    async with uow.begin():
        await _insert_item(1)
        # Visible inside the transaction...
        count = await current_connection().execute(text("SELECT count(*) FROM items"))
        assert count.scalar_one() == 1
    # ...and gone after it.
    assert await _items(engine) == []


async def test_an_exception_rolls_back_and_propagates(
    uow: SqlAlchemyUnitOfWork, engine: AsyncEngine
) -> None:
    class BoomError(Exception):
        pass

    async def fail_half_way() -> None:
        async with uow.begin():
            await _insert_item(1)
            raise BoomError

    with pytest.raises(BoomError):
        await fail_half_way()
    assert await _items(engine) == []


async def test_units_of_work_do_not_nest(uow: SqlAlchemyUnitOfWork, engine: AsyncEngine) -> None:
    async with uow.begin() as tx:
        await _insert_item(1)
        with pytest.raises(RuntimeError, match="do not nest"):
            async with uow.begin():
                pytest.fail("a nested unit of work was opened")
        # The refused inner block did not disturb the outer transaction.
        await _insert_item(2)
        await tx.commit()
    assert await _items(engine) == [1, 2]
    # And the outer block left no stale state behind: a new one opens normally.
    async with uow.begin(read_only=True):
        current_connection()


async def test_current_connection_exists_only_inside_a_unit_of_work(
    uow: SqlAlchemyUnitOfWork,
) -> None:
    with pytest.raises(RuntimeError, match="no unit of work is active"):
        current_connection()
    async with uow.begin():
        inside = current_connection()
        assert isinstance(inside, AsyncConnection)
        assert inside.in_transaction()
    with pytest.raises(RuntimeError, match="no unit of work is active"):
        current_connection()


async def test_tasks_spawned_inside_take_part_in_the_transaction(
    uow: SqlAlchemyUnitOfWork, engine: AsyncEngine
) -> None:
    async with uow.begin():
        outer = current_connection()

        async def child() -> AsyncConnection:
            await _insert_item(7)
            return current_connection()

        assert await asyncio.create_task(child()) is outer
        # Not committed: the child's write goes with the parent's rollback.
    assert await _items(engine) == []


async def test_a_unique_violation_is_a_concurrency_conflict(
    uow: SqlAlchemyUnitOfWork, engine: AsyncEngine
) -> None:
    await _commit_items(uow, 1)
    with pytest.raises(ConcurrencyConflictError):
        await _commit_items(uow, 2, 1)
    assert await _items(engine) == [1]


async def test_other_integrity_errors_are_not_retried(
    uow: SqlAlchemyUnitOfWork, engine: AsyncEngine
) -> None:
    # No such parent: a foreign key violation, which rerunning cannot fix, so it is not
    # turned into a ConcurrencyConflictError (which is no IntegrityError).
    with pytest.raises(IntegrityError):
        await _commit_items(uow, 1, parent=99)
    assert await _items(engine) == []


async def test_sqlite_writers_serialise(sqlite_url: str) -> None:
    """Concurrent read-then-write transactions queue for the write lock.

    None fails with "database is locked", none loses an update: BEGIN IMMEDIATE plus the busy
    timeout.
    """
    engine = create_engine(sqlite_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE counter (value integer NOT NULL)"))
            await connection.execute(text("INSERT INTO counter (value) VALUES (0)"))
        uow = SqlAlchemyUnitOfWork(engine)

        async def increment() -> None:
            async with uow.begin() as tx:
                select_value = text("SELECT value FROM counter")
                value = (await current_connection().execute(select_value)).scalar_one()
                await asyncio.sleep(0)  # let the other writers run while this one holds the lock
                await current_connection().execute(
                    text("UPDATE counter SET value = :value"), {"value": value + 1}
                )
                await tx.commit()

        results = await asyncio.gather(
            *(increment() for _ in range(WRITERS)), return_exceptions=True
        )
        assert [result for result in results if result is not None] == []
        async with engine.connect() as connection:
            final = (await connection.execute(text("SELECT value FROM counter"))).scalar_one()
        assert final == WRITERS
    finally:
        await engine.dispose()


async def test_a_second_sqlite_writer_waits_for_the_first(sqlite_url: str) -> None:
    """Two transactions open at once both commit.

    The second waits for the first's commit and then sees what it wrote.
    """
    engine = create_engine(sqlite_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(_CREATE_ITEMS))
        uow = SqlAlchemyUnitOfWork(engine)
        first_holds_lock = asyncio.Event()
        release_first = asyncio.Event()
        seen_by_second: list[int] = []

        async def first() -> None:
            async with uow.begin() as tx:
                await _insert_item(1)
                first_holds_lock.set()
                await release_first.wait()
                await tx.commit()

        async def second() -> None:
            async with uow.begin() as tx:
                rows = await current_connection().execute(text("SELECT id FROM items"))
                seen_by_second.extend(row.id for row in rows)
                await _insert_item(2)
                await tx.commit()

        first_task = asyncio.create_task(first())
        async with asyncio.timeout(WAIT_LIMIT_S):
            await first_holds_lock.wait()
        second_task = asyncio.create_task(second())
        # Give the second writer every chance to get ahead; it must not while the first
        # holds the write lock.
        for _ in range(10):
            await asyncio.sleep(0.01)
        assert not second_task.done()
        release_first.set()
        async with asyncio.timeout(WAIT_LIMIT_S):
            await asyncio.gather(first_task, second_task)
        assert seen_by_second == [1]
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT id FROM items ORDER BY id"))
            assert [row.id for row in rows] == [1, 2]
    finally:
        await engine.dispose()


async def test_postgres_read_only_units_refuse_writes_and_do_not_leak(postgres_url: str) -> None:
    # One connection, so the write below reuses the connection the read-only block had.
    engine = create_engine(postgres_url, pool_size=1)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(_CREATE_ITEMS))
        uow = SqlAlchemyUnitOfWork(engine)
        with pytest.raises(DBAPIError, match="read-only"):
            async with uow.begin(read_only=True):
                await _insert_item(1)
        async with uow.begin() as tx:
            await _insert_item(2)
            await tx.commit()
        assert await _items(engine) == [2]
    finally:
        await engine.dispose()


async def test_a_postgres_deadlock_is_a_concurrency_conflict(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE items (id integer PRIMARY KEY)"))
            await connection.execute(text("INSERT INTO items (id) VALUES (1), (2)"))
        uow = SqlAlchemyUnitOfWork(engine)
        both_hold_one = asyncio.Barrier(2)

        async def lock(first: int, then: int) -> None:
            async with uow.begin() as tx:
                connection = current_connection()
                # Detect the deadlock quickly; the default is a second.
                await connection.execute(text("SET LOCAL deadlock_timeout = '50ms'"))
                lock_row = text("SELECT id FROM items WHERE id = :id FOR UPDATE")
                await connection.execute(lock_row, {"id": first})
                await both_hold_one.wait()
                await connection.execute(lock_row, {"id": then})
                await tx.commit()

        async with asyncio.timeout(WAIT_LIMIT_S):
            results = await asyncio.gather(lock(1, 2), lock(2, 1), return_exceptions=True)
        failures = [result for result in results if result is not None]
        # PostgreSQL picks one victim; the other transaction then completes.
        assert len(failures) == 1
        assert isinstance(failures[0], ConcurrencyConflictError)
        assert "deadlock" in str(failures[0])
    finally:
        await engine.dispose()
