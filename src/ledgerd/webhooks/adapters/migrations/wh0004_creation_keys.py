"""Webhooks: CreateWebhook's idempotency keys, unique per ledger, kept when the webhook is deleted.

``webhook_endpoints`` gains the key a webhook was created with and its request's fingerprint
(both NULL for one created without a key, as every webhook before this revision was), and a
unique index on (ledger, key): NULLs are distinct in it on SQLite and PostgreSQL alike, so any
number of webhooks may have no key. ``webhook_spent_keys`` keeps the keys of webhooks deleted
since, so that a late retry of their creation is refused rather than creating them again.

Downgrading drops the keys: a retry after it creates a second webhook, as before this revision.

Revision ID: wh0004
Revises: wh0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "wh0004"
down_revision: str | None = "wh0003"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None

_ID = sa.String(128)
_FINGERPRINT = sa.String(64)


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.add_column(sa.Column("idempotency_key", _ID, nullable=True))
        batch.add_column(sa.Column("request_fingerprint", _FINGERPRINT, nullable=True))
    op.create_index(
        "ix_webhook_endpoints_ledger_idempotency_key",
        "webhook_endpoints",
        ["ledger", "idempotency_key"],
        unique=True,
    )
    op.create_table(
        "webhook_spent_keys",
        sa.Column("ledger", _ID, nullable=False),
        sa.Column("idempotency_key", _ID, nullable=False),
        sa.Column("request_fingerprint", _FINGERPRINT, nullable=False),
        sa.Column("webhook_id", _ID, nullable=False),
        sa.PrimaryKeyConstraint("ledger", "idempotency_key", name="pk_webhook_spent_keys"),
    )


def downgrade() -> None:
    op.drop_table("webhook_spent_keys")
    op.drop_index("ix_webhook_endpoints_ledger_idempotency_key", table_name="webhook_endpoints")
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.drop_column("request_fingerprint")
        batch.drop_column("idempotency_key")
