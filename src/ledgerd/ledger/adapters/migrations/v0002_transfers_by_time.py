"""Index transfers by ledger and creation time, for ListTransfers' time filters.

Revision ID: v0002
Revises: v0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision: str = "v0002"
down_revision: str | None = "v0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # A plain CREATE INDEX: migrations run in one transaction, where CONCURRENTLY cannot.
    op.create_index(
        "ix_transfers_ledger_time", "transfers", ["ledger_id", "created_at", "sequence"]
    )


def downgrade() -> None:
    op.drop_index("ix_transfers_ledger_time", table_name="transfers")
