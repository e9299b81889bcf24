"""Identity: OAuth2 clients, users, their grants, refresh-token families, the signing key set.

Revision ID: i0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledgerd.platform.db.types import UtcDateTime

revision: str = "i0001"
# A base of its own: no other owner's revision comes before it.
down_revision: str | None = None
# `ledgerd migrate identity@head` upgrades this branch alone.
branch_labels: tuple[str, ...] | None = ("identity",)
depends_on: str | None = None

_ID = sa.String(128)
_DIGEST = sa.String(64)
_SECRET_HASH = sa.String(255)


def upgrade() -> None:
    op.create_table(
        "identity_clients",
        sa.Column("client_id", _ID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("secret_hash", _SECRET_HASH, nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("all_ledgers", sa.Boolean(), nullable=False),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("client_id", name="pk_identity_clients"),
    )
    op.create_table(
        "identity_client_ledgers",
        sa.Column("client_id", _ID, nullable=False),
        sa.Column("ledger_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["identity_clients.client_id"],
            name="fk_identity_client_ledgers_client_id_identity_clients",
        ),
        sa.PrimaryKeyConstraint("client_id", "ledger_id", name="pk_identity_client_ledgers"),
    )
    op.create_table(
        "identity_users",
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("username", sa.String(200), nullable=False),
        sa.Column("password_hash", _SECRET_HASH, nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("all_ledgers", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("disabled_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name="pk_identity_users"),
        sa.UniqueConstraint("username", name="uq_identity_users_username"),
    )
    op.create_table(
        "identity_user_ledgers",
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("ledger_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["identity_users.user_id"],
            name="fk_identity_user_ledgers_user_id_identity_users",
        ),
        sa.PrimaryKeyConstraint("user_id", "ledger_id", name="pk_identity_user_ledgers"),
    )
    op.create_table(
        "identity_refresh_families",
        sa.Column("family_id", _ID, nullable=False),
        sa.Column("client_id", _ID, nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("all_ledgers", sa.Boolean(), nullable=False),
        sa.Column("ledgers", sa.JSON(), nullable=False),
        sa.Column("absolute_lifetime_us", sa.BigInteger(), nullable=False),
        sa.Column("idle_timeout_us", sa.BigInteger(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("current_digest", _DIGEST, nullable=False),
        sa.Column("current_issued_at", UtcDateTime(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.Column("revocation_cause", sa.String(32), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["identity_clients.client_id"],
            name="fk_identity_refresh_families_client_id_identity_clients",
        ),
        sa.PrimaryKeyConstraint("family_id", name="pk_identity_refresh_families"),
    )
    op.create_table(
        "identity_refresh_tokens",
        sa.Column("digest", _DIGEST, nullable=False),
        sa.Column("family_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["family_id"],
            ["identity_refresh_families.family_id"],
            name="fk_identity_refresh_tokens_family_id_identity_refresh_families",
        ),
        sa.PrimaryKeyConstraint("digest", name="pk_identity_refresh_tokens"),
    )
    op.create_index(
        "ix_identity_refresh_tokens_family_id", "identity_refresh_tokens", ["family_id"]
    )
    op.create_table(
        "identity_signing_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("key_set", sa.Text(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_identity_signing_keys_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_identity_signing_keys"),
    )


def downgrade() -> None:
    op.drop_table("identity_signing_keys")
    op.drop_index("ix_identity_refresh_tokens_family_id", table_name="identity_refresh_tokens")
    op.drop_table("identity_refresh_tokens")
    op.drop_table("identity_refresh_families")
    op.drop_table("identity_user_ledgers")
    op.drop_table("identity_users")
    op.drop_table("identity_client_ledgers")
    op.drop_table("identity_clients")
