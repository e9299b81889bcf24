"""A deadline that passes during COMMIT never turns a committed transaction into a failure.

Issue 11, item 2: "deadline exceeded" must mean "nothing was written". Once COMMIT is on its
way the database decides whatever the caller does, so the unit of work lets it finish and
answers with what it did. The test sweeps a deadline across a whole unit of work, on both
databases, and checks every answer against the table: each success is there, each failure
is not.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.kernel.deadline import DeadlineExceededError, deadline_scope
from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork, current_connection

# Deadlines per sweep, spread evenly from 0 to twice the time one unit of work takes on a
# fresh connection (a cancelled one is discarded, so the next unit makes a new one).
SWEEP = 150
ROWS_PER_UNIT = 20


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE items (id integer PRIMARY KEY)"))
    yield engine
    await engine.dispose()


async def _unit(uow: SqlAlchemyUnitOfWork, first_id: int) -> None:
    async with uow.begin() as tx:
        await current_connection().execute(
            text("INSERT INTO items (id) VALUES (:id)"),
            [{"id": first_id + n} for n in range(ROWS_PER_UNIT)],
        )
        await tx.commit()


async def test_every_answer_under_a_deadline_is_true_to_the_table(engine: AsyncEngine) -> None:
    uow = SqlAlchemyUnitOfWork(engine)
    await engine.dispose()
    started = time.perf_counter()
    await _unit(uow, first_id=0)
    run_s = 2 * (time.perf_counter() - started)
    answers: dict[int, bool] = {}  # first id -> whether the caller was told it succeeded
    for step in range(1, SWEEP + 1):
        first_id = step * ROWS_PER_UNIT
        try:
            async with deadline_scope(run_s * step / SWEEP):
                await _unit(uow, first_id)
        except DeadlineExceededError:
            answers[first_id] = False
        else:
            answers[first_id] = True
    async with engine.connect() as connection:
        stored = set((await connection.scalars(text("SELECT id FROM items"))).all())
    lies = [
        first_id
        for first_id, succeeded in answers.items()
        if succeeded != (first_id in stored)
        or (first_id in stored) != all(first_id + n in stored for n in range(ROWS_PER_UNIT))
    ]
    assert lies == []
    # The sweep reached both sides of the commit.
    assert set(answers.values()) == {True, False}
