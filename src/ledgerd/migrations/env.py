"""Alembic environment: runs on the connection ``ledgerd.platform.db.migrations`` hands in.

It imports no context: the caller hands in the tables too (the metadata), as ``Migrations``
composed them, and the revisions are found in the version locations it names.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, MetaData

from ledgerd.platform.db.migrations import CONNECTION_ATTRIBUTE, METADATA_ATTRIBUTE

_RUN_WITH_LEDGERD = "run migrations with `ledgerd migrate`, which provides the database connection"


def _run_migrations() -> None:
    connection = context.config.attributes.get(CONNECTION_ATTRIBUTE)
    metadata = context.config.attributes.get(METADATA_ATTRIBUTE)
    if not isinstance(connection, Connection) or not isinstance(metadata, MetaData):
        raise TypeError(_RUN_WITH_LEDGERD)
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
