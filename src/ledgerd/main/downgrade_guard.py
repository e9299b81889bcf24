"""What a schema downgrade would destroy, counted before anything is dropped."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

# The tables whose rows a user would miss, in the order a summary names them.
_COUNTED = ("ledgers", "accounts", "transfers")


@dataclass(frozen=True)
class Holdings:
    ledgers: int
    accounts: int
    transfers: int

    @property
    def journal_empty(self) -> bool:
        return self.transfers == 0

    def summary(self) -> str:
        return f"{self.ledgers} ledgers, {self.accounts} accounts, {self.transfers} transfers"


async def count_holdings(engine: AsyncEngine) -> Holdings:
    """The rows the ledger tables hold now (0 for a table not there: an older or no schema)."""

    def count(connection: Connection) -> Holdings:
        present = set(inspect(connection).get_table_names())
        counts = {
            # The names are this module's constants, never input.
            table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608
            if table in present
            else 0
            for table in _COUNTED
        }
        return Holdings(**counts)

    async with engine.connect() as connection:
        return await connection.run_sync(count)
