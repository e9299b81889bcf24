"""Webhooks: index the delivery attempts by when they were made, for the retention's sweep.

The sweep (``sql_attempt_records``) deletes the oldest attempts past
``LEDGERD_WEBHOOKS_ATTEMPTS_RETENTION_DAYS``, a batch at a time: with this index each batch
reads its rows from the start of the range instead of walking the whole table, and the sweep's
last, short batch (the one that finds nothing more to delete) costs no more than the others.

Revision ID: wh0003
Revises: wh0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision: str = "wh0003"
down_revision: str | None = "wh0002"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None


def upgrade() -> None:
    # A plain CREATE INDEX: migrations run in one transaction, where CONCURRENTLY cannot. On a
    # large table it holds off new attempts (not the ledger) while it is built.
    op.create_index("ix_webhook_attempts_started_at_id", "webhook_attempts", ["started_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_attempts_started_at_id", table_name="webhook_attempts")
