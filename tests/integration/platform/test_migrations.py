"""Migrations build exactly the schema the code declares, both ways, on both databases."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, insert, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.identity.adapters import tables as identity_tables
from ledgerd.ledger.adapters import tables
from ledgerd.main.bounded_context import BoundedContext
from ledgerd.main.contexts import ENABLED_CONTEXTS
from ledgerd.main.migrations import MIGRATIONS, migrations_for
from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.migrations import current_revisions
from ledgerd.streaming.adapters import tables as streaming_tables
from ledgerd.webhooks.adapters import tables as webhook_tables

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
# Every enabled context's tables: the ledger's and the outbox's above, identity's, streaming's
# and the webhooks' here.
ALL_TABLES = (
    LEDGER_TABLES
    | {table.name for table in identity_tables.TABLES}
    | {streaming_tables.tickets.name}
    | {table.name for table in webhook_tables.TABLES}
)
# A throwaway context's first revision: a branch of its own, as a new context starts one.
_WIDGETS_REVISION = '''"""Widgets: the throwaway context's one table."""

import sqlalchemy as sa
from alembic import op

revision = "w0001"
down_revision = None
branch_labels = ("widgets",)
depends_on = {depends_on!r}


def upgrade() -> None:
    op.create_table("widgets", sa.Column("id", sa.String(16), primary_key=True))


def downgrade() -> None:
    op.drop_table("widgets")
'''


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
    # The tables as the composition root hands them to the migrations (env.py's target).
    return list(compare_metadata(context, MIGRATIONS.metadata))


async def test_upgrade_downgrade_upgrade_round_trip(engine: AsyncEngine) -> None:
    heads = MIGRATIONS.heads()
    assert await _tables(engine) == set()
    assert await current_revisions(engine) == set()
    assert not await MIGRATIONS.is_current(engine)

    await MIGRATIONS.upgrade(engine)
    assert await _tables(engine) == ALL_TABLES | {"alembic_version"}
    assert await current_revisions(engine) == heads
    assert await MIGRATIONS.is_current(engine)

    await MIGRATIONS.downgrade(engine, "base")
    # Alembic keeps its (now empty) version table; every table of ours is gone.
    assert await _tables(engine) & ALL_TABLES == set()
    assert await current_revisions(engine) == set()

    await MIGRATIONS.upgrade(engine)
    assert await _tables(engine) == ALL_TABLES | {"alembic_version"}
    assert await current_revisions(engine) == heads


async def test_upgrading_twice_is_a_no_op(engine: AsyncEngine) -> None:
    await MIGRATIONS.upgrade(engine)
    await MIGRATIONS.upgrade(engine)
    assert await current_revisions(engine) == MIGRATIONS.heads()


async def test_a_database_made_when_the_history_was_one_folder_keeps_upgrading(
    engine: AsyncEngine,
) -> None:
    # Such databases hold v0004 (the ledger's revisions and then the outbox's, one line): the
    # ids stayed when each owner took its revisions, so the history still knows where they are.
    await MIGRATIONS.upgrade(engine, "v0004")
    assert await current_revisions(engine) == {"v0004"}
    assert await _tables(engine) == LEDGER_TABLES | {"alembic_version"}

    await MIGRATIONS.upgrade(engine)
    assert await MIGRATIONS.is_current(engine)


def _widgets_context(folder: Path, depends_on: str | None) -> BoundedContext:
    """A context whose description names a migrations folder with its own branch in it."""
    folder.mkdir()
    source = _WIDGETS_REVISION.format(depends_on=depends_on)
    (folder / "w0001_widgets.py").write_text(source, encoding="utf-8")
    return BoundedContext(name="widgets", providers=lambda: (), migrations=(str(folder),))


@pytest.mark.parametrize(
    ("depends_on", "held"),
    [
        # Its own base: the database holds each branch's head.
        (None, {"v0004", "i0002", "s0001", "wh0005", "w0001"}),
        # On top of the outbox: the database holds w0001 (and the other contexts' heads), v0004
        # below it.
        ("v0004", {"i0002", "s0001", "wh0005", "w0001"}),
    ],
)
async def test_a_contexts_own_branch_is_upgraded_with_the_rest_and_downgraded_to_base(
    engine: AsyncEngine, tmp_path: Path, depends_on: str | None, held: set[str]
) -> None:
    widgets = _widgets_context(tmp_path / "widgets_migrations", depends_on)
    with_widgets = migrations_for((*ENABLED_CONTEXTS, widgets))
    assert with_widgets.heads() == MIGRATIONS.heads() | {"w0001"}

    # A database migrated before the context was enabled: current no longer, upgraded in place.
    await MIGRATIONS.upgrade(engine)
    await _insert_one_entry_pair(engine)
    assert not await with_widgets.is_current(engine)

    await with_widgets.upgrade(engine)
    assert await _tables(engine) == ALL_TABLES | {"alembic_version", "widgets"}
    assert await current_revisions(engine) == held
    assert await with_widgets.is_current(engine)
    # Without the context, its revision is one the history does not know: not current.
    assert not await MIGRATIONS.is_current(engine)
    async with engine.connect() as connection:
        kept = (await connection.execute(text("SELECT count(*) FROM entries"))).scalar_one()
    assert kept == 2

    await with_widgets.downgrade(engine, "base")
    assert await _tables(engine) & (ALL_TABLES | {"widgets"}) == set()
    assert await current_revisions(engine) == set()

    await with_widgets.upgrade(engine)
    assert await _tables(engine) == ALL_TABLES | {"alembic_version", "widgets"}
    assert await with_widgets.is_current(engine)


def test_a_migrations_folder_that_is_not_there_is_refused(tmp_path: Path) -> None:
    # Alembic alone would pass over it, and the context's tables would never be made.
    missing = str(tmp_path / "typo")
    with pytest.raises(ValueError, match=r"no such migrations folder: .*typo"):
        migrations_for(
            (BoundedContext(name="typo", providers=lambda: (), migrations=(missing,)),)
        ).heads()


async def test_migrated_schema_matches_the_table_definitions(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        before = await connection.run_sync(_schema_differences)
    # The comparison itself must be able to see a difference: on an empty database every
    # declared table is missing.
    assert {diff[1].name for diff in before if diff[0] == "add_table"} == ALL_TABLES

    await MIGRATIONS.upgrade(engine)
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
    await MIGRATIONS.upgrade(engine)
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
        await MIGRATIONS.upgrade(engine)
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
