"""The streaming context's tables (SQLAlchemy Core); its migrations build them.

- ``streaming_tickets``: one row per stream ticket not yet presented: the SHA-256 of the ticket
  (never the ticket), the ledger it opens, the asker's subject and scopes, the expiry of the
  access token that asked for it, and its own. Presenting a ticket deletes its row.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, String, Table

from ledgerd.platform.db.schema import metadata
from ledgerd.platform.db.types import UtcDateTime

tickets = Table(
    "streaming_tickets",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("ledger", String(128), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("token_expires_at", UtcDateTime, nullable=True),
    Column("expires_at", UtcDateTime, nullable=False),
    Index("ix_streaming_tickets_expires_at", "expires_at"),
)
