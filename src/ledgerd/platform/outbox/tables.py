"""The outbox's tables. Generic: a *stream* is whatever orders events (for ledgerd, a ledger).

- ``outbox_streams``: each stream's last allocated sequence. Bumping it takes the row's
  lock until commit, so sequences follow commit order and a rolled-back transaction leaves no
  gap.
- ``outbox_events``: the events themselves, envelope and payload, never updated: the log that
  the relay publishes from and ``ledgerd replay`` reads back.
- ``outbox_cursors``: per stream, how far the relay has published, and its retry state. A
  relay locks a cursor row (``FOR UPDATE SKIP LOCKED``) while it publishes that stream, so
  relays never share a stream: no double publishing, no reordering. Kept apart from
  ``outbox_streams`` so that publishing never blocks a transaction appending events.
- ``outbox_dead_letters``: events a broker refused too many times, with the reason; the relay
  steps past them (the event itself stays in the log).
- ``outbox_relays``: the relays running now, one row per relay process, so that anyone can
  see who publishes, and where to: each refreshes its row every few seconds and removes it on
  a clean stop (see ``presence``). Where it publishes is kept without credentials.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    String,
    Table,
)

from ledgerd.platform.db.schema import metadata
from ledgerd.platform.db.types import UtcDateTime

STREAM = String(128)
EVENT_ID = String(64)
REASON = String(1000)
DESTINATION = String(500)

outbox_streams = Table(
    "outbox_streams",
    metadata,
    Column("stream", STREAM, primary_key=True),
    Column("last_sequence", BigInteger, nullable=False),
)

outbox_events = Table(
    "outbox_events",
    metadata,
    Column("stream", STREAM, primary_key=True),
    Column("sequence", BigInteger, primary_key=True),
    Column("id", EVENT_ID, nullable=False, unique=True),
    Column("type", String(200), nullable=False),
    Column("source", String(300), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("time", UtcDateTime, nullable=False),
    Column("datacontenttype", String(100), nullable=False),
    Column("data", LargeBinary, nullable=False),
    ForeignKeyConstraint(["stream"], ["outbox_streams.stream"]),
)

outbox_cursors = Table(
    "outbox_cursors",
    metadata,
    Column("stream", STREAM, primary_key=True),
    Column("published_sequence", BigInteger, nullable=False),
    # Consecutive failed attempts of any kind: how long to back off.
    Column("failures", Integer, nullable=False),
    # Consecutive refusals of the stream's next event by the broker: when to dead-letter it.
    Column("rejections", Integer, nullable=False),
    Column("retry_at", UtcDateTime, nullable=True),
    Column("last_error", REASON, nullable=True),
    ForeignKeyConstraint(["stream"], ["outbox_streams.stream"]),
)

outbox_dead_letters = Table(
    "outbox_dead_letters",
    metadata,
    Column("stream", STREAM, primary_key=True),
    Column("sequence", BigInteger, primary_key=True),
    Column("id", EVENT_ID, nullable=False),
    Column("reason", REASON, nullable=False),
    Column("dead_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(
        ["stream", "sequence"], ["outbox_events.stream", "outbox_events.sequence"]
    ),
)

outbox_relays = Table(
    "outbox_relays",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("publisher", String(100), nullable=False),
    Column("destination", DESTINATION, nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("command", String(100), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
)
