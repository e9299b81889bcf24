"""Alembic environment: runs on the connection ``ledgerd.platform.db.migrations`` hands in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from ledgerd.ledger.adapters import tables
from ledgerd.platform.db.schema import metadata
from ledgerd.platform.messaging import consumer
from ledgerd.platform.outbox import tables as outbox_tables

# The table modules register themselves on the shared metadata when imported.
_REGISTERED = (tables, outbox_tables, consumer)


def _run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        msg = "run migrations with `ledgerd migrate`, which provides the database connection"
        raise TypeError(msg)
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_run_migrations()
