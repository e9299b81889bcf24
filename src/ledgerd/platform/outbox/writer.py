"""Appending events to the outbox, inside the caller's unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, insert
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ledgerd.platform.db.bulk import InsertUnnested, insert_rows
from ledgerd.platform.db.unit_of_work import after_commit, current_connection
from ledgerd.platform.messaging.envelope import PROTOBUF, Envelope
from ledgerd.platform.outbox.tables import outbox_cursors, outbox_events, outbox_streams

# PostgreSQL delivers a NOTIFY when (and only if) its transaction commits: relays in other
# processes LISTEN on this channel instead of polling.
NOTIFY_CHANNEL = "ledgerd_outbox"
_INSERT_EVENTS = InsertUnnested(outbox_events)


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """An event before the outbox gives it its id and its place in the stream."""

    type: str
    subject: str
    time: datetime
    data: bytes
    datacontenttype: str = PROTOBUF


def _random_id() -> str:
    return str(uuid.uuid4())


class OutboxWriter:
    """Gives events the next sequences of their stream and writes them, before commit.

    ``wake`` runs after the commit (e.g. the in-process relay's notifier), so a relay in
    this process starts publishing at once; relays elsewhere hear PostgreSQL's NOTIFY.
    ``committed`` runs after it too, with the stream written to (``commits.py``).
    """

    def __init__(
        self,
        *,
        wake: Callable[[], object] | None = None,
        committed: Callable[[str], object] | None = None,
        new_id: Callable[[], str] = _random_id,
    ) -> None:
        self._wake = wake
        self._committed = committed
        self._new_id = new_id

    async def append(
        self, stream: str, source: str, events: Sequence[OutgoingEvent]
    ) -> list[Envelope]:
        if not events:
            return []
        connection = current_connection()
        postgres = connection.dialect.name == "postgresql"
        count = len(events)
        upsert = (postgres_insert if postgres else sqlite_insert)(outbox_streams).values(
            stream=stream, last_sequence=count
        )
        upsert = upsert.on_conflict_do_update(
            index_elements=[outbox_streams.c.stream],
            set_={"last_sequence": outbox_streams.c.last_sequence + count},
        )
        # The notification rides on the same statement: one round trip, not two.
        returned: list[ColumnElement[Any]] = [outbox_streams.c.last_sequence]
        if postgres:
            returned.append(func.pg_notify(NOTIFY_CHANNEL, stream))
        last = int((await connection.execute(upsert.returning(*returned))).scalars().one())
        first = last - count + 1
        if first == 1:
            # A new stream: its cursor starts before the first event.
            await connection.execute(
                insert(outbox_cursors).values(
                    stream=stream, published_sequence=0, failures=0, rejections=0
                )
            )
        envelopes = [
            Envelope(
                id=self._new_id(),
                source=source,
                type=event.type,
                subject=event.subject,
                time=event.time,
                ledger=stream,
                sequence=first + offset,
                data=event.data,
                datacontenttype=event.datacontenttype,
            )
            for offset, event in enumerate(events)
        ]
        await insert_rows(
            _INSERT_EVENTS,
            [
                {
                    "stream": envelope.ledger,
                    "sequence": envelope.sequence,
                    "id": envelope.id,
                    "type": envelope.type,
                    "source": envelope.source,
                    "subject": envelope.subject,
                    "time": envelope.time,
                    "datacontenttype": envelope.datacontenttype,
                    "data": envelope.data,
                }
                for envelope in envelopes
            ],
        )
        if self._wake is not None:
            after_commit(self._wake)
        if self._committed is not None:
            committed = self._committed
            after_commit(lambda: committed(stream))
        return envelopes
