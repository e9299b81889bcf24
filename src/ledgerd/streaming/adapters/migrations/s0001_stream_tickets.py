"""Streaming: stream tickets (their digests, the ledger, the asker's grant, expiries).

Revision ID: s0001
Revises:
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledgerd.platform.db.types import UtcDateTime

revision: str = "s0001"
# A base of its own: no other owner's revision comes before it.
down_revision: str | None = None
# `ledgerd migrate streaming@head` upgrades this branch alone.
branch_labels: tuple[str, ...] | None = ("streaming",)
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "streaming_tickets",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("ledger", sa.String(128), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("token_expires_at", UtcDateTime(), nullable=True),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_streaming_tickets"),
    )
    op.create_index("ix_streaming_tickets_expires_at", "streaming_tickets", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_streaming_tickets_expires_at", table_name="streaming_tickets")
    op.drop_table("streaming_tickets")
