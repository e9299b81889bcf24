"""Events: the outbox (per-ledger streams, the event log, relay cursors, dead letters), the inbox.

Revision ID: v0003
Revises: v0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledgerd.platform.db.types import UtcDateTime

revision: str = "v0003"
down_revision: str | None = "v0002"
branch_labels: str | None = None
depends_on: str | None = None

_STREAM = sa.String(128)
_EVENT_ID = sa.String(64)
_REASON = sa.String(1000)


def upgrade() -> None:
    op.create_table(
        "outbox_streams",
        sa.Column("stream", _STREAM, nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("stream", name="pk_outbox_streams"),
    )
    op.create_table(
        "outbox_events",
        sa.Column("stream", _STREAM, nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("id", _EVENT_ID, nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("time", UtcDateTime(), nullable=False),
        sa.Column("datacontenttype", sa.String(100), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("stream", "sequence", name="pk_outbox_events"),
        sa.UniqueConstraint("id", name="uq_outbox_events_id"),
        sa.ForeignKeyConstraint(
            ["stream"], ["outbox_streams.stream"], name="fk_outbox_events_stream_outbox_streams"
        ),
    )
    op.create_table(
        "outbox_cursors",
        sa.Column("stream", _STREAM, nullable=False),
        sa.Column("published_sequence", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("rejections", sa.Integer(), nullable=False),
        sa.Column("retry_at", UtcDateTime(), nullable=True),
        sa.Column("last_error", _REASON, nullable=True),
        sa.PrimaryKeyConstraint("stream", name="pk_outbox_cursors"),
        sa.ForeignKeyConstraint(
            ["stream"], ["outbox_streams.stream"], name="fk_outbox_cursors_stream_outbox_streams"
        ),
    )
    op.create_table(
        "outbox_dead_letters",
        sa.Column("stream", _STREAM, nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("id", _EVENT_ID, nullable=False),
        sa.Column("reason", _REASON, nullable=False),
        sa.Column("dead_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("stream", "sequence", name="pk_outbox_dead_letters"),
        sa.ForeignKeyConstraint(
            ["stream", "sequence"],
            ["outbox_events.stream", "outbox_events.sequence"],
            name="fk_outbox_dead_letters_stream_sequence_outbox_events",
        ),
    )

    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(128), nullable=False),
        sa.Column("event_id", _EVENT_ID, nullable=False),
        sa.Column("handled_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_inbox"),
    )


def downgrade() -> None:
    op.drop_table("inbox")
    op.drop_table("outbox_dead_letters")
    op.drop_table("outbox_cursors")
    op.drop_table("outbox_events")
    op.drop_table("outbox_streams")
