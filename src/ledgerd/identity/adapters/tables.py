"""The identity context's tables (SQLAlchemy Core); its migrations build them.

Every name starts with ``identity_``: the tables share one schema with the other contexts'.

- ``identity_clients`` / ``identity_users``: one row each, with the argon2 hash of the secret
  or password (never the secret), the granted scopes (a JSON list) and ``all_ledgers``;
- ``identity_client_ledgers`` / ``identity_user_ledgers``: the ledgers granted one by one, a
  row each, so that creating a ledger can grant it to its creator with one insert. No foreign
  key to the ledger context's ``ledgers``: contexts do not reach into each other's tables;
- ``identity_refresh_families``: a family's grant (a snapshot taken when it started), policy,
  current token digest, generation (the compare-and-set of a rotation) and revocation;
- ``identity_refresh_tokens``: every refresh-token digest a family ever issued, leading to it,
  so that a spent token is recognised (and its family revoked) rather than unknown;
- ``identity_signing_keys``: one row, the serialised key set and its version;
- ``identity_authorization_codes``: a code's digest, its bindings (client, redirect URI, PKCE
  challenge), the grant it carries, and when it was redeemed (the compare-and-set of a
  redemption) or presented again.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ledgerd.platform.db.schema import metadata
from ledgerd.platform.db.types import UtcDateTime

ID = String(128)
# A SHA-256 digest in hex (refresh tokens).
DIGEST = String(64)
# An argon2id PHC string is ~100 characters; room for stronger parameters later.
SECRET_HASH = String(255)

clients = Table(
    "identity_clients",
    metadata,
    Column("client_id", ID, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("secret_hash", SECRET_HASH, nullable=True),
    Column("scopes", JSON, nullable=False),
    Column("all_ledgers", Boolean, nullable=False),
    Column("redirect_uris", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
)

client_ledgers = Table(
    "identity_client_ledgers",
    metadata,
    Column("client_id", ID, primary_key=True),
    Column("ledger_id", ID, primary_key=True),
    ForeignKeyConstraint(["client_id"], ["identity_clients.client_id"]),
)

users = Table(
    "identity_users",
    metadata,
    Column("user_id", ID, primary_key=True),
    Column("username", String(200), nullable=False),
    Column("password_hash", SECRET_HASH, nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("all_ledgers", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("disabled_at", UtcDateTime, nullable=True),
    UniqueConstraint("username"),
)

user_ledgers = Table(
    "identity_user_ledgers",
    metadata,
    Column("user_id", ID, primary_key=True),
    Column("ledger_id", ID, primary_key=True),
    ForeignKeyConstraint(["user_id"], ["identity_users.user_id"]),
)

refresh_families = Table(
    "identity_refresh_families",
    metadata,
    Column("family_id", ID, primary_key=True),
    Column("client_id", ID, nullable=False),
    # The client itself or the user it acts for.
    Column("subject", String(200), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("all_ledgers", Boolean, nullable=False),
    # The ledger ids granted (empty when all_ledgers): fixed when the family started.
    Column("ledgers", JSON, nullable=False),
    # The policy in force when the family started, in microseconds (exact on both databases).
    Column("absolute_lifetime_us", BigInteger, nullable=False),
    Column("idle_timeout_us", BigInteger, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("current_digest", DIGEST, nullable=False),
    Column("current_issued_at", UtcDateTime, nullable=False),
    # Updated only from the generation the writer read: of two rotations one wins.
    Column("generation", BigInteger, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("revocation_cause", String(32), nullable=True),
    ForeignKeyConstraint(["client_id"], ["identity_clients.client_id"]),
)

refresh_tokens = Table(
    "identity_refresh_tokens",
    metadata,
    Column("digest", DIGEST, primary_key=True),
    Column("family_id", ID, nullable=False),
    ForeignKeyConstraint(["family_id"], ["identity_refresh_families.family_id"]),
    Index("ix_identity_refresh_tokens_family_id", "family_id"),
)

signing_keys = Table(
    "identity_signing_keys",
    metadata,
    # One row: the set in force. A check keeps it one, whatever writes to the table.
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
    # platform.auth's serialised set: JSON text holding the private keys (docs/security.md).
    Column("key_set", Text, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

authorization_codes = Table(
    "identity_authorization_codes",
    metadata,
    Column("code_digest", DIGEST, primary_key=True),
    Column("client_id", ID, nullable=False),
    Column("redirect_uri", Text, nullable=False),
    # An S256 challenge: always 43 characters.
    Column("code_challenge", String(43), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("all_ledgers", Boolean, nullable=False),
    Column("ledgers", JSON, nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    # Updated only from the redeemed state the writer read: of two redemptions one wins.
    Column("redeemed_at", UtcDateTime, nullable=True),
    Column("issued_refresh_digest", DIGEST, nullable=True),
    Column("reuse_detected_at", UtcDateTime, nullable=True),
    ForeignKeyConstraint(["client_id"], ["identity_clients.client_id"]),
)

# Every table of the context, parents first.
TABLES = (
    clients,
    client_ledgers,
    users,
    user_ledgers,
    refresh_families,
    refresh_tokens,
    signing_keys,
    authorization_codes,
)
