"""A downstream system's read model of balances, built from the ledger's events alone.

What a service consuming the events would keep: its own table, one row per (ledger,
account), updated by a handler that sees nothing but the envelope. The tests feed it through
a ``Consumer`` (so the inbox shares the handler's transaction) and compare it with the
ledger's stored balances: they must be equal once every event has been handled.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, MetaData, String, Table, select, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.ledger.application.queries import LedgerQueries
from ledgerd.ledger.published.events import decode_envelope
from ledgerd.platform.db.unit_of_work import current_connection
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.v1 import ledger_pb2 as pb

_downstream = MetaData()
projected_balances = Table(
    "downstream_balances",
    _downstream,
    Column("ledger", String(128), primary_key=True),
    Column("account", String(128), primary_key=True),
    Column("posted_debits", BigInteger, nullable=False),
    Column("posted_credits", BigInteger, nullable=False),
    Column("pending_debits", BigInteger, nullable=False),
    Column("pending_credits", BigInteger, nullable=False),
)
_COLUMNS = ("posted_debits", "posted_credits", "pending_debits", "pending_credits")
Balances = tuple[int, int, int, int]


async def create_read_model(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_downstream.create_all)


async def project(envelope: Envelope) -> None:
    """The downstream handler: apply a transfer event's entries to the read model.

    Runs inside the consumer's transaction (``current_connection``), so the read model and
    the inbox row commit together. Events without entries (ledgers, accounts) change nothing.
    """
    message = decode_envelope(envelope)
    connection = current_connection()
    insert = postgres_insert if connection.dialect.name == "postgresql" else sqlite_insert
    for entry in getattr(message, "entries", ()):
        column = _COLUMNS[
            (0 if entry.layer == pb.Entry.POSTED else 2)
            + (0 if entry.side == pb.Entry.DEBIT else 1)
        ]
        row = (projected_balances.c.ledger == envelope.ledger) & (
            projected_balances.c.account == entry.account
        )
        await connection.execute(
            insert(projected_balances)
            .values(ledger=envelope.ledger, account=entry.account, **dict.fromkeys(_COLUMNS, 0))
            .on_conflict_do_nothing()
        )
        await connection.execute(
            update(projected_balances)
            .where(row)
            .values({column: projected_balances.c[column] + entry.amount})
        )


async def projected(engine: AsyncEngine) -> dict[tuple[str, str], Balances]:
    """The read model: (ledger, account) -> posted/pending debits/credits."""
    async with engine.connect() as connection:
        rows = (await connection.execute(select(projected_balances))).all()
    return {(row.ledger, row.account): _balances(row[2:]) for row in rows}


async def stored(
    queries: LedgerQueries, accounts: set[tuple[str, str]]
) -> dict[tuple[str, str], Balances]:
    """The ledger's own balances of the same accounts, for comparison."""
    result: dict[tuple[str, str], Balances] = {}
    for ledger, account in sorted(accounts):
        balances = (await queries.get_balance(ledger, account)).balances
        result[ledger, account] = (
            balances.posted_debits,
            balances.posted_credits,
            balances.pending_debits,
            balances.pending_credits,
        )
    return result


def _balances(values: tuple[int, ...]) -> Balances:
    posted_debits, posted_credits, pending_debits, pending_credits = values
    return posted_debits, posted_credits, pending_debits, pending_credits
