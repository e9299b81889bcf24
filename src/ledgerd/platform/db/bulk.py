"""Many rows in one statement: PostgreSQL takes them as one array parameter per column.

The statement text and its parameter count stay the same for any number of rows, so one
prepared statement serves every batch size, the round trips do not grow with the rows, and
asyncpg's limit of 32,767 parameters is never reached. SQLite gets a multi-row VALUES.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Table,
    Text,
    bindparam,
    cast,
    column,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine

from ledgerd.platform.db.unit_of_work import current_connection


def on_postgres(connection: AsyncConnection) -> bool:
    return connection.dialect.name == "postgresql"


class Unnested:
    """``unnest(:a_x, :a_y, ...) AS v(x, y, ...)``: rows from one typed array parameter per column.

    The statement text and its parameter count stay the same for any number of rows, so one
    prepared statement serves every batch size and no parameter limit is ever reached.
    """

    def __init__(self, columns: Mapping[str, TypeEngine[Any]]) -> None:
        # SQLAlchemy would take a JSON list for another dimension of the array: JSON values
        # travel as text, serialised here, and are cast back in the statement.
        self._json = frozenset(name for name, type_ in columns.items() if isinstance(type_, JSON))
        types = {name: Text() if name in self._json else type_ for name, type_ in columns.items()}
        self.rows = (
            func.unnest(*(bindparam(f"a_{name}", type_=ARRAY(t)) for name, t in types.items()))
            .table_valued(*(column(name, type_) for name, type_ in types.items()))
            .render_derived(name="v")
        )

    def __getitem__(self, name: str) -> ColumnElement[Any]:
        """Column ``name`` of the rows, with its own type."""
        value = self.rows.c[name]
        return cast(value, JSON) if name in self._json else value

    def parameters(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
        """``rows`` (a value for every column) turned into the arrays."""
        return {
            f"a_{name}": [
                json.dumps(row[name]) if name in self._json else row[name] for row in rows
            ]
            for name in self.rows.c.keys()  # noqa: SIM118 - a ColumnCollection, not a dict
        }


class InsertUnnested:
    """``INSERT INTO table SELECT ... FROM unnest(...)``: any number of rows in one statement."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.rows = Unnested({c.name: c.type for c in table.columns})
        self.statement = insert(table).from_select(
            [c.name for c in table.columns], select(*(self.rows[c.name] for c in table.columns))
        )


async def insert_rows(into: InsertUnnested, rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        return
    connection = current_connection()
    if on_postgres(connection):
        await connection.execute(into.statement, into.rows.parameters(rows))
    else:
        # A multi-row VALUES per batch of rows (SQLAlchemy's "insertmanyvalues").
        await connection.execute(insert(into.table), list(rows))
