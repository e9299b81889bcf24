"""Identity: authorization codes (their digests, bindings, grant and redemption).

Revision ID: i0002
Revises: i0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledgerd.platform.db.types import UtcDateTime

revision: str = "i0002"
down_revision: str | None = "i0001"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None

_ID = sa.String(128)
_DIGEST = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "identity_authorization_codes",
        sa.Column("code_digest", _DIGEST, nullable=False),
        sa.Column("client_id", _ID, nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.String(43), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("all_ledgers", sa.Boolean(), nullable=False),
        sa.Column("ledgers", sa.JSON(), nullable=False),
        sa.Column("issued_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("redeemed_at", UtcDateTime(), nullable=True),
        sa.Column("issued_refresh_digest", _DIGEST, nullable=True),
        sa.Column("reuse_detected_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["identity_clients.client_id"],
            name="fk_identity_authorization_codes_client_id_identity_clients",
        ),
        sa.PrimaryKeyConstraint("code_digest", name="pk_identity_authorization_codes"),
    )


def downgrade() -> None:
    op.drop_table("identity_authorization_codes")
