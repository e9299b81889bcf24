"""Migrations build exactly the schema the code declares, both ways, on both databases."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, insert, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.ledger.adapters import tables
from ledgerd.platform.db import migrations
from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.schema import metadata
from ledgerd.platform.messaging import consumer
from ledgerd.platform.outbox import tables as outbox_tables

LEDGER_TABLES = {
    "ledgers",
    "accounts",
    "transfers",
    "entries",
    "outbox_streams",
    "outbox_events",
    "outbox_cursors",
    "outbox_dead_letters",
    "outbox_relays",
    "inbox",
}
# Registered on the shared metadata by importing the table modules (as env.py does).
_REGISTERED = (tables, outbox_tables, consumer)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return await connection.run_sync(_table_names)


def _schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_upgrade_downgrade_upgrade_round_trip(engine: AsyncEngine) -> None:
    head = migrations.head_revision()
    assert head is not None
    assert await _tables(engine) == set()
    assert await migrations.current_revision(engine) is None

    await migrations.upgrade(engine)
    assert await _tables(engine) == LEDGER_TABLES | {"alembic_version"}
    assert await migrations.current_revision(engine) == head

    await migrations.downgrade(engine, "base")
    # Alembic keeps its (now empty) version table; every table of ours is gone.
    assert await _tables(engine) & LEDGER_TABLES == set()
    assert await migrations.current_revision(engine) is None

    await migrations.upgrade(engine)
    assert await _tables(engine) == LEDGER_TABLES | {"alembic_version"}
    assert await migrations.current_revision(engine) == head


async def test_upgrading_twice_is_a_no_op(engine: AsyncEngine) -> None:
    await migrations.upgrade(engine)
    await migrations.upgrade(engine)
    assert await migrations.current_revision(engine) == migrations.head_revision()


async def test_migrated_schema_matches_the_table_definitions(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        before = await connection.run_sync(_schema_differences)
    # The comparison itself must be able to see a difference: on an empty database every
    # declared table is missing.
    assert {diff[1].name for diff in before if diff[0] == "add_table"} == LEDGER_TABLES

    await migrations.upgrade(engine)
    async with engine.connect() as connection:
        after = await connection.run_sync(_schema_differences)
    assert after == []


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE entries SET amount = amount + 1",
        "UPDATE entries SET posted_credits_after = 0 WHERE account_id = 'b'",
        "DELETE FROM entries",
        "DELETE FROM entries WHERE account_id = 'a'",
    ],
)
async def test_the_journal_is_append_only_in_the_database(
    engine: AsyncEngine, statement: str
) -> None:
    await migrations.upgrade(engine)
    await _insert_one_entry_pair(engine)

    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as connection:
            await connection.execute(text(statement))

    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                text("SELECT account_id, amount FROM entries ORDER BY account_id")
            )
        ).all()
    assert [tuple(row) for row in rows] == [("a", 5), ("b", 5)]


async def test_the_journal_cannot_be_truncated_on_postgres(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        await migrations.upgrade(engine)
        await _insert_one_entry_pair(engine)
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as connection:
                await connection.execute(text("TRUNCATE entries"))
    finally:
        await engine.dispose()


async def _insert_one_entry_pair(engine: AsyncEngine) -> None:
    """One transfer of 5 from a to b, written straight to the tables (no repository code)."""
    created = datetime(2030, 1, 1, tzinfo=UTC)
    zero = "0" * 64
    async with engine.begin() as connection:
        await connection.execute(
            insert(tables.ledgers).values(
                id="l", name="l", metadata={}, created_at=created, last_sequence=1, head_hash=zero
            )
        )
        await connection.execute(
            insert(tables.accounts),
            [
                {
                    "ledger_id": "l",
                    "id": account,
                    "asset_code": "USD",
                    "asset_scale": 2,
                    "debits_must_not_exceed_credits": False,
                    "credits_must_not_exceed_debits": False,
                    "overdraft_limit": 0,
                    "status": "open",
                    "metadata": {},
                    "posted_debits": debits,
                    "posted_credits": credited,
                    "pending_debits": 0,
                    "pending_credits": 0,
                    "entry_count": 1,
                    "version": 1,
                    "created_at": created,
                }
                for account, debits, credited in (("a", 5, 0), ("b", 0, 5))
            ],
        )
        await connection.execute(
            insert(tables.transfers).values(
                ledger_id="l",
                id="t",
                sequence=1,
                kind="posting",
                status="posted",
                idempotency_key="k",
                request_hash=zero,
                legs=[["a", "b", 5, "USD", 2]],
                metadata={},
                created_at=created,
                prev_hash=zero,
                hash=zero,
            )
        )
        await connection.execute(
            insert(tables.entries),
            [
                {
                    "ledger_id": "l",
                    "account_id": account,
                    "account_sequence": 1,
                    "transfer_id": "t",
                    "transfer_sequence": 1,
                    "leg_index": 0,
                    "side": side,
                    "layer": "posted",
                    "amount": 5,
                    "posted_debits_after": debits,
                    "posted_credits_after": credited,
                    "pending_debits_after": 0,
                    "pending_credits_after": 0,
                    "created_at": created,
                }
                for account, side, debits, credited in (("a", "debit", 5, 0), ("b", "credit", 0, 5))
            ],
        )
