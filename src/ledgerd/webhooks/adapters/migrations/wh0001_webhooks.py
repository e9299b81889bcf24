"""Webhooks: endpoints, their cursors over the ledgers' events, attempts and dead letters.

Revision ID: wh0001
Revises:
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledgerd.platform.db.types import UtcDateTime

revision: str = "wh0001"
# A base of its own: no other owner's revision comes before it.
down_revision: str | None = None
# `ledgerd migrate webhooks@head` upgrades this branch alone.
branch_labels: tuple[str, ...] | None = ("webhooks",)
depends_on: str | None = None

_ID = sa.String(128)
_SECRET = sa.String(100)
_ERROR = sa.String(1000)
_EVENT_TYPE = sa.String(200)
_EVENT_ID = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", _ID, nullable=False),
        sa.Column("ledger", _ID, nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("accounts", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("secret", _SECRET, nullable=False),
        sa.Column("previous_secret", _SECRET, nullable=True),
        sa.Column("previous_secret_expires_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_endpoints"),
    )
    op.create_index(
        "ix_webhook_endpoints_ledger_id", "webhook_endpoints", ["ledger", "id"], unique=False
    )
    op.create_table(
        "webhook_cursors",
        sa.Column("webhook_id", _ID, nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("retry_at", UtcDateTime(), nullable=True),
        sa.Column("last_error", _ERROR, nullable=True),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhook_endpoints.id"],
            name="fk_webhook_cursors_webhook_id_webhook_endpoints",
        ),
        sa.PrimaryKeyConstraint("webhook_id", name="pk_webhook_cursors"),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("webhook_id", _ID, nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("event_id", _EVENT_ID, nullable=False),
        sa.Column("event_type", _EVENT_TYPE, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("replay", sa.Boolean(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", _ERROR, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhook_endpoints.id"],
            name="fk_webhook_attempts_webhook_id_webhook_endpoints",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_attempts"),
    )
    op.create_index(
        "ix_webhook_attempts_webhook_id_id", "webhook_attempts", ["webhook_id", "id"], unique=False
    )
    op.create_table(
        "webhook_dead_letters",
        sa.Column("webhook_id", _ID, nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("event_id", _EVENT_ID, nullable=False),
        sa.Column("event_type", _EVENT_TYPE, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", _ERROR, nullable=False),
        sa.Column("dead_at", UtcDateTime(), nullable=False),
        sa.Column("replay_requested", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhook_endpoints.id"],
            name="fk_webhook_dead_letters_webhook_id_webhook_endpoints",
        ),
        sa.PrimaryKeyConstraint("webhook_id", "sequence", name="pk_webhook_dead_letters"),
    )


def downgrade() -> None:
    op.drop_table("webhook_dead_letters")
    op.drop_index("ix_webhook_attempts_webhook_id_id", table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_cursors")
    op.drop_index("ix_webhook_endpoints_ledger_id", table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
