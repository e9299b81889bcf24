"""Outbox relays: who relays events now, and where to (``ledgerd outbox`` shows them).

Revision ID: v0004
Revises: v0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledgerd.platform.db.types import UtcDateTime

revision: str = "v0004"
down_revision: str | None = "v0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "outbox_relays",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("publisher", sa.String(100), nullable=False),
        sa.Column("destination", sa.String(500), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("command", sa.String(100), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outbox_relays"),
    )


def downgrade() -> None:
    op.drop_table("outbox_relays")
