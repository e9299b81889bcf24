"""Webhooks: each endpoint's cursor names its last attempt, which the retention keeps.

The retention's sweep keeps each endpoint's last attempt, however old (when the endpoint was
last tried, how it answered). It asked the attempts themselves whether a later one of the same
endpoint exists, and PostgreSQL planned that question badly when few endpoints share many
attempts (it hashed the whole table, or walked the primary key backwards past every other
endpoint's attempts: 80 ms to 16 s a batch at 360,000 rows, ``bench/attempt_retention.py``).
The dispatcher now writes the attempt's number into the endpoint's cursor row, which it holds
already, as it records the attempt; the sweep looks it up by primary key. Filled here from the
attempts there are.

Revision ID: wh0005
Revises: wh0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "wh0005"
down_revision: str | None = "wh0004"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_cursors") as batch:
        batch.add_column(sa.Column("last_attempt_id", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE webhook_cursors SET last_attempt_id = (SELECT max(a.id) FROM webhook_attempts a"
        " WHERE a.webhook_id = webhook_cursors.webhook_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("webhook_cursors") as batch:
        batch.drop_column("last_attempt_id")
