"""Webhooks: room in the secret columns for a sealed secret (``sealed_secrets``).

Revision ID: wh0002
Revises: wh0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "wh0002"
down_revision: str | None = "wh0001"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None

_PLAIN = sa.String(100)
_SEALED = sa.String(400)


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.alter_column("secret", type_=_SEALED, existing_type=_PLAIN, existing_nullable=False)
        batch.alter_column(
            "previous_secret", type_=_SEALED, existing_type=_PLAIN, existing_nullable=True
        )


def downgrade() -> None:
    # A sealed secret does not fit the plain columns: unseal first (no wrapping key set,
    # `ledgerd webhooks reseal` stores them plain), or the downgrade fails on PostgreSQL.
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.alter_column("secret", type_=_PLAIN, existing_type=_SEALED, existing_nullable=False)
        batch.alter_column(
            "previous_secret", type_=_PLAIN, existing_type=_SEALED, existing_nullable=True
        )
