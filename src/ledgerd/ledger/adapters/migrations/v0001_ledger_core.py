"""The ledger core: ledgers, accounts, transfers and the append-only journal.

Revision ID: v0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledgerd.platform.db.types import UtcDateTime

revision: str = "v0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_ID = sa.String(128)
_HASH = sa.String(64)

_POSTGRES_APPEND_ONLY = """
CREATE FUNCTION ledgerd_journal_is_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the journal is append-only: % on entries is not allowed', TG_OP;
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        "ledgers",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", _HASH, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledgers"),
    )
    op.create_table(
        "accounts",
        sa.Column("ledger_id", _ID, nullable=False),
        sa.Column("id", _ID, nullable=False),
        sa.Column("asset_code", sa.String(16), nullable=False),
        sa.Column("asset_scale", sa.Integer(), nullable=False),
        sa.Column("debits_must_not_exceed_credits", sa.Boolean(), nullable=False),
        sa.Column("credits_must_not_exceed_debits", sa.Boolean(), nullable=False),
        sa.Column("overdraft_limit", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("posted_debits", sa.BigInteger(), nullable=False),
        sa.Column("posted_credits", sa.BigInteger(), nullable=False),
        sa.Column("pending_debits", sa.BigInteger(), nullable=False),
        sa.Column("pending_credits", sa.BigInteger(), nullable=False),
        sa.Column("entry_count", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "posted_debits >= 0 AND posted_credits >= 0 AND pending_debits >= 0 "
            "AND pending_credits >= 0",
            name="ck_accounts_balances_not_negative",
        ),
        sa.ForeignKeyConstraint(
            ["ledger_id"], ["ledgers.id"], name="fk_accounts_ledger_id_ledgers"
        ),
        sa.PrimaryKeyConstraint("ledger_id", "id", name="pk_accounts"),
    )
    op.create_table(
        "transfers",
        sa.Column("ledger_id", _ID, nullable=False),
        sa.Column("id", _ID, nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(256), nullable=False),
        sa.Column("request_hash", _HASH, nullable=False),
        sa.Column("legs", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("target_id", _ID, nullable=True),
        sa.Column("prev_hash", _HASH, nullable=False),
        sa.Column("hash", _HASH, nullable=False),
        sa.ForeignKeyConstraint(
            ["ledger_id"], ["ledgers.id"], name="fk_transfers_ledger_id_ledgers"
        ),
        sa.PrimaryKeyConstraint("ledger_id", "id", name="pk_transfers"),
        sa.UniqueConstraint("ledger_id", "sequence", name="uq_transfers_ledger_id_sequence"),
        sa.UniqueConstraint(
            "ledger_id", "idempotency_key", name="uq_transfers_ledger_id_idempotency_key"
        ),
        sa.UniqueConstraint("ledger_id", "target_id", name="uq_transfers_ledger_id_target_id"),
    )
    op.create_index(
        "ix_transfers_pending_expiry",
        "transfers",
        ["expires_at"],
        postgresql_where=sa.text("status = 'pending' AND expires_at IS NOT NULL"),
        sqlite_where=sa.text("status = 'pending' AND expires_at IS NOT NULL"),
    )
    op.create_table(
        "entries",
        sa.Column("ledger_id", _ID, nullable=False),
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("account_sequence", sa.BigInteger(), nullable=False),
        sa.Column("transfer_id", _ID, nullable=False),
        sa.Column("transfer_sequence", sa.BigInteger(), nullable=False),
        sa.Column("leg_index", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("layer", sa.String(8), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("posted_debits_after", sa.BigInteger(), nullable=False),
        sa.Column("posted_credits_after", sa.BigInteger(), nullable=False),
        sa.Column("pending_debits_after", sa.BigInteger(), nullable=False),
        sa.Column("pending_credits_after", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ledger_id", "account_id"],
            ["accounts.ledger_id", "accounts.id"],
            name="fk_entries_ledger_id_account_id_accounts",
        ),
        sa.ForeignKeyConstraint(
            ["ledger_id", "transfer_id"],
            ["transfers.ledger_id", "transfers.id"],
            name="fk_entries_ledger_id_transfer_id_transfers",
        ),
        sa.PrimaryKeyConstraint("ledger_id", "account_id", "account_sequence", name="pk_entries"),
    )
    op.create_index("ix_entries_account_time", "entries", ["ledger_id", "account_id", "created_at"])
    op.create_index("ix_entries_transfer", "entries", ["ledger_id", "transfer_id"])
    _forbid_journal_changes()


def _forbid_journal_changes() -> None:
    """The database itself refuses UPDATE and DELETE on entries, whoever sends them."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRES_APPEND_ONLY)
        op.execute(
            "CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries "
            "FOR EACH ROW EXECUTE FUNCTION ledgerd_journal_is_append_only()"
        )
        # Row triggers do not see TRUNCATE, which would otherwise empty the journal at once.
        op.execute(
            "CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledgerd_journal_is_append_only()"
        )
        return
    for operation in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER entries_no_{operation.lower()} BEFORE {operation} ON entries "
            "BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER entries_no_truncate ON entries")
        op.execute("DROP TRIGGER entries_append_only ON entries")
        op.execute("DROP FUNCTION ledgerd_journal_is_append_only()")
    else:
        op.execute("DROP TRIGGER entries_no_update")
        op.execute("DROP TRIGGER entries_no_delete")
    op.drop_index("ix_entries_transfer", table_name="entries")
    op.drop_index("ix_entries_account_time", table_name="entries")
    op.drop_table("entries")
    op.drop_index("ix_transfers_pending_expiry", table_name="transfers")
    op.drop_table("transfers")
    op.drop_table("accounts")
    op.drop_table("ledgers")
