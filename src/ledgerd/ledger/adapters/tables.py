"""The ledger context's tables (SQLAlchemy Core). Migrations create them; tests compare both."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from ledgerd.platform.db.schema import metadata
from ledgerd.platform.db.types import UtcDateTime

ID = String(128)
HASH = String(64)

ledgers = Table(
    "ledgers",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # The head of the hash chain; locking this row serialises posting within a ledger.
    Column("last_sequence", BigInteger, nullable=False),
    Column("head_hash", HASH, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("ledger_id", ID, primary_key=True),
    Column("id", ID, primary_key=True),
    Column("asset_code", String(16), nullable=False),
    Column("asset_scale", Integer, nullable=False),
    Column("debits_must_not_exceed_credits", Boolean, nullable=False),
    Column("credits_must_not_exceed_debits", Boolean, nullable=False),
    Column("overdraft_limit", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("posted_debits", BigInteger, nullable=False),
    Column("posted_credits", BigInteger, nullable=False),
    Column("pending_debits", BigInteger, nullable=False),
    Column("pending_credits", BigInteger, nullable=False),
    Column("entry_count", BigInteger, nullable=False),
    # Optimistic concurrency: every update must name the version it read.
    Column("version", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(["ledger_id"], ["ledgers.id"]),
    CheckConstraint(
        "posted_debits >= 0 AND posted_credits >= 0 AND pending_debits >= 0 "
        "AND pending_credits >= 0",
        name="balances_not_negative",
    ),
)

transfers = Table(
    "transfers",
    metadata,
    Column("ledger_id", ID, primary_key=True),
    Column("id", ID, primary_key=True),
    Column("sequence", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("idempotency_key", String(256), nullable=False),
    Column("request_hash", HASH, nullable=False),
    Column("legs", JSON, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("target_id", ID, nullable=True),
    Column("prev_hash", HASH, nullable=False),
    Column("hash", HASH, nullable=False),
    ForeignKeyConstraint(["ledger_id"], ["ledgers.id"]),
    UniqueConstraint("ledger_id", "sequence"),
    UniqueConstraint("ledger_id", "idempotency_key"),
    # At most one capture/void/expiry/reversal settles a given transfer.
    UniqueConstraint("ledger_id", "target_id"),
    # ListTransfers' start_time/end_time: the first and last sequence of a time range are
    # read from it (creation times follow the chain), and the page is then a sequence range.
    Index("ix_transfers_ledger_time", "ledger_id", "created_at", "sequence"),
    # The expiry sweep's scan: only holds that can still expire are indexed.
    Index(
        "ix_transfers_pending_expiry",
        "expires_at",
        postgresql_where="status = 'pending' AND expires_at IS NOT NULL",
        sqlite_where="status = 'pending' AND expires_at IS NOT NULL",
    ),
)

entries = Table(
    "entries",
    metadata,
    Column("ledger_id", ID, primary_key=True),
    Column("account_id", ID, primary_key=True),
    Column("account_sequence", BigInteger, primary_key=True),
    Column("transfer_id", ID, nullable=False),
    Column("transfer_sequence", BigInteger, nullable=False),
    Column("leg_index", Integer, nullable=False),
    Column("side", String(8), nullable=False),
    Column("layer", String(8), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("posted_debits_after", BigInteger, nullable=False),
    Column("posted_credits_after", BigInteger, nullable=False),
    Column("pending_debits_after", BigInteger, nullable=False),
    Column("pending_credits_after", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(["ledger_id", "account_id"], ["accounts.ledger_id", "accounts.id"]),
    ForeignKeyConstraint(["ledger_id", "transfer_id"], ["transfers.ledger_id", "transfers.id"]),
    Index("ix_entries_account_time", "ledger_id", "account_id", "created_at"),
    Index("ix_entries_transfer", "ledger_id", "transfer_id"),
)
