"""The webhooks context's tables (SQLAlchemy Core); its migrations build them.

Every name starts with ``webhook_``: the tables share one schema with the other contexts'.

- ``webhook_endpoints``: an endpoint's settings: its ledger, URL, filter (two JSON lists), the
  secret that signs and, while its grace lasts, the one before it. The secrets are sealed under
  the database's wrapping key when one is set (``sealed_secrets``), else stored as they are
  (signing needs them), and then whoever reads this table can sign as ledgerd would. The
  idempotency key it was created with, if any, with its request's fingerprint: unique per
  ledger (an index that lets any number of endpoints have none);
- ``webhook_spent_keys``: the idempotency keys of endpoints deleted since, so that a late retry
  of their creation is refused instead of creating the endpoint again (``create_webhook``);
- ``webhook_cursors``: per endpoint, its place in its ledger's events (``position``: every
  event up to it is delivered, dead-lettered or not for it) and its retry state. A dispatcher
  holds an endpoint by locking this row (``FOR UPDATE SKIP LOCKED``, PostgreSQL) for one
  attempt, so two never deliver to one endpoint at once. Kept apart from the endpoints so
  that changing an endpoint never waits for a delivery in flight;
- ``webhook_attempts``: every request made, with its outcome, numbered in the order written;
  kept for ``LEDGERD_WEBHOOKS_ATTEMPTS_RETENTION_DAYS`` (``sql_attempt_records``);
- ``webhook_dead_letters``: the events an endpoint failed every attempt at, and whether a
  replay of each was asked for. The event itself stays in the outbox's log.

No foreign key leads to another owner's table (the ledger's stream, the outbox's events): a
context does not reach into another's tables, and the events are kept for replay anyway.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
)

from ledgerd.platform.db.schema import metadata
from ledgerd.platform.db.types import UtcDateTime

ID = String(128)
URL = String(2048)
# A secret as stored: sealed (webhooks/adapters/sealed_secrets.py, ~160 characters) or plain.
SECRET = String(400)
ERROR = String(1000)
# A creation request's fingerprint: a SHA-256 in hex (webhooks/domain/idempotency.py).
FINGERPRINT = String(64)
EVENT_TYPE = String(200)
EVENT_ID = String(64)
# SQLite numbers a table's rows itself only for an INTEGER PRIMARY KEY; PostgreSQL's is 64-bit.
ROW_NUMBER = BigInteger().with_variant(Integer(), "sqlite")

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", ID, primary_key=True),
    Column("ledger", ID, nullable=False),
    Column("url", URL, nullable=False),
    Column("description", String(200), nullable=False),
    Column("event_types", JSON, nullable=False),
    Column("accounts", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("secret", SECRET, nullable=False),
    Column("previous_secret", SECRET, nullable=True),
    Column("previous_secret_expires_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # Set together or not at all; NULLs are distinct in a unique index on both databases, so
    # the endpoints created without a key never clash.
    Column("idempotency_key", ID, nullable=True),
    Column("request_fingerprint", FINGERPRINT, nullable=True),
    Index(None, "ledger", "id"),
    Index(None, "ledger", "idempotency_key", unique=True),
)

webhook_spent_keys = Table(
    "webhook_spent_keys",
    metadata,
    Column("ledger", ID, primary_key=True),
    Column("idempotency_key", ID, primary_key=True),
    Column("request_fingerprint", FINGERPRINT, nullable=False),
    # The endpoint it created, deleted: no foreign key, its row is gone.
    Column("webhook_id", ID, nullable=False),
)

webhook_cursors = Table(
    "webhook_cursors",
    metadata,
    Column("webhook_id", ID, primary_key=True),
    Column("position", BigInteger, nullable=False),
    # Failed attempts in a row at the endpoint's next delivery: the back-off, and when to give up.
    Column("failed_attempts", Integer, nullable=False),
    Column("retry_at", UtcDateTime, nullable=True),
    Column("last_error", ERROR, nullable=True),
    # The endpoint's last attempt (``webhook_attempts.id``), which the retention keeps however
    # old: written with each attempt, looked up by the sweep (sql_attempt_records).
    Column("last_attempt_id", BigInteger, nullable=True),
    ForeignKeyConstraint(["webhook_id"], ["webhook_endpoints.id"]),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", ROW_NUMBER, primary_key=True, autoincrement=True),
    Column("webhook_id", ID, nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("event_id", EVENT_ID, nullable=False),
    Column("event_type", EVENT_TYPE, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("replay", Boolean, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", ERROR, nullable=True),
    Column("outcome", String(16), nullable=False),
    ForeignKeyConstraint(["webhook_id"], ["webhook_endpoints.id"]),
    Index(None, "webhook_id", "id"),
    # The retention's sweep: the oldest first (sql_attempt_records).
    Index(None, "started_at", "id"),
)

webhook_dead_letters = Table(
    "webhook_dead_letters",
    metadata,
    Column("webhook_id", ID, primary_key=True),
    Column("sequence", BigInteger, primary_key=True),
    Column("event_id", EVENT_ID, nullable=False),
    Column("event_type", EVENT_TYPE, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", ERROR, nullable=False),
    Column("dead_at", UtcDateTime, nullable=False),
    Column("replay_requested", Boolean, nullable=False),
    ForeignKeyConstraint(["webhook_id"], ["webhook_endpoints.id"]),
)

TABLES = (
    webhook_endpoints,
    webhook_cursors,
    webhook_attempts,
    webhook_dead_letters,
    webhook_spent_keys,
)
