"""The relay's side of the outbox: claim a stream, read what is unpublished, record progress.

On PostgreSQL a claim is a transaction holding the stream's cursor row (``FOR UPDATE SKIP
LOCKED``) while its events are published and until the cursor has moved: any number of
relays, in any number of processes, each take different streams, and a relay that dies
mid-publish loses its lock with its transaction, so another takes the stream from the last
recorded position (publishing some events again: consumers deduplicate by id).

SQLite has no row locks and its write lock would stop every posting for as long as a broker
takes to answer, so there a claim only reads, and each outcome is recorded in a short write
transaction of its own. The embedded database runs one relay (inside ``ledgerd serve``); if
a second one runs anyway (a ``ledgerd worker`` beside it), both may publish the same events
(consumers deduplicate by id; each relay publishes in order, so first copies stay in order),
and neither can move a cursor back: an outcome is recorded only if the cursor is still where
its claim found it (otherwise the other relay got further, and its outcome stands).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, delete, func, insert, or_, select, update

from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork, current_connection
from ledgerd.platform.messaging.addresses import without_credentials
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.outbox.tables import (
    DESTINATION,
    REASON,
    outbox_cursors,
    outbox_dead_letters,
    outbox_events,
    outbox_relays,
    outbox_streams,
)
from ledgerd.platform.outbox.writer import NOTIFY_CHANNEL

_REASON_LENGTH = REASON.length or 1000
_DESTINATION_LENGTH = DESTINATION.length or 500
# Streams asked at once by ``last_sequences``: well under SQLite's and asyncpg's parameter limits.
STREAMS_PER_QUERY = 1000


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Cursor:
    stream: str
    published_sequence: int
    failures: int
    rejections: int


@dataclass(frozen=True, slots=True)
class StreamLag:
    """How far a stream's publishing is behind its writing."""

    stream: str
    last_sequence: int
    published_sequence: int
    oldest_unpublished: datetime | None
    failures: int
    last_error: str | None

    @property
    def unpublished(self) -> int:
        return self.last_sequence - self.published_sequence


@dataclass(frozen=True, slots=True)
class DeadLetter:
    stream: str
    sequence: int
    id: str
    reason: str
    dead_at: datetime


@dataclass(frozen=True, slots=True)
class RelayIdentity:
    """A running relay as others see it: which process, publishing with what, and where to."""

    id: str  # unique per relay process
    publisher: str
    destination: str  # stored without credentials, whatever is given here
    host: str
    pid: int
    command: str
    started_at: datetime


@dataclass(frozen=True, slots=True)
class RelaySeen:
    """A relay's row in ``outbox_relays``: who it is, and when it last said it was alive."""

    relay: RelayIdentity
    last_seen_at: datetime


class OutboxStore:
    def __init__(
        self, uow: SqlAlchemyUnitOfWork, *, now: Callable[[], datetime] = _utc_now
    ) -> None:
        self._uow = uow
        self._now = now
        self._postgres = uow.dialect_name == "postgresql"
        self._served_last = ""  # round robin: the next claim looks past this stream first

    @asynccontextmanager
    async def claim(self, batch_size: int) -> AsyncIterator[Claim | None]:
        """The next stream with unpublished events that is due, or None if there is none."""
        if self._postgres:
            async with self._uow.begin() as transaction:
                claim = await self._claim(batch_size, lock=True)
                yield claim
                if claim is not None:
                    await transaction.commit()
            return
        async with self._uow.begin(read_only=True):
            claim = await self._claim(batch_size, lock=False)
        yield claim

    async def _claim(self, batch_size: int, *, lock: bool) -> Claim | None:
        cursor = await self._next_cursor(after=self._served_last, lock=lock)
        if cursor is None and self._served_last:
            cursor = await self._next_cursor(after="", lock=lock)
        if cursor is None:
            return None
        self._served_last = cursor.stream
        rows = await current_connection().execute(
            select(outbox_events)
            .where(
                outbox_events.c.stream == cursor.stream,
                outbox_events.c.sequence > cursor.published_sequence,
            )
            .order_by(outbox_events.c.sequence)
            .limit(batch_size)
        )
        envelopes = [envelope_of(row) for row in rows]
        return Claim(self, cursor, envelopes)

    async def _next_cursor(self, *, after: str, lock: bool) -> Cursor | None:
        query: Select[tuple[str, int, int, int]] = (
            select(
                outbox_cursors.c.stream,
                outbox_cursors.c.published_sequence,
                outbox_cursors.c.failures,
                outbox_cursors.c.rejections,
            )
            .join(outbox_streams, outbox_streams.c.stream == outbox_cursors.c.stream)
            .where(
                outbox_streams.c.last_sequence > outbox_cursors.c.published_sequence,
                or_(outbox_cursors.c.retry_at.is_(None), outbox_cursors.c.retry_at <= self._now()),
                outbox_cursors.c.stream > after,
            )
            .order_by(outbox_cursors.c.stream)
            .limit(1)
        )
        if lock:
            query = query.with_for_update(of=outbox_cursors, skip_locked=True)
        row = (await current_connection().execute(query)).one_or_none()
        if row is None:
            return None
        return Cursor(row.stream, row.published_sequence, row.failures, row.rejections)

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[None]:
        """Where a claim records its outcome: its own transaction (PG), or a new short one."""
        if self._postgres:
            yield
            return
        async with self._uow.begin() as transaction:
            yield
            await transaction.commit()

    async def _move_cursor(  # noqa: PLR0913 - the cursor's columns, each set explicitly
        self,
        claimed: Cursor,
        *,
        published: int,
        failures: int,
        rejections: int,
        retry_at: datetime | None,
        error: str | None,
    ) -> bool:
        """Record an outcome, unless the cursor has moved since ``claimed`` (SQLite: see above)."""
        moved = await current_connection().execute(
            update(outbox_cursors)
            .where(
                outbox_cursors.c.stream == claimed.stream,
                outbox_cursors.c.published_sequence == claimed.published_sequence,
            )
            .values(
                published_sequence=published,
                failures=failures,
                rejections=rejections,
                retry_at=retry_at,
                last_error=None if error is None else error[:_REASON_LENGTH],
            )
        )
        return bool(moved.rowcount)

    async def rewind(self, stream: str, *, after: int) -> int:
        """Publish ``stream``'s events after sequence ``after`` again; how many will go out.

        Moves the cursor back to ``after`` (never forward: a cursor already there or behind
        stays, and 0 is returned) and clears its retry state; the relays publish the events
        again, in order, with their ids (consumers deduplicate). For a broker that joined
        late, or a consumer that lost what it had. Raises ``LookupError`` for a stream with
        no events. On PostgreSQL the relays are woken at commit; on SQLite, by their poll.
        """
        if after < 0:
            msg = f"a sequence is 0 or more, not {after}"
            raise ValueError(msg)
        async with self._uow.begin() as transaction:
            connection = current_connection()
            last = (
                await connection.execute(
                    select(outbox_streams.c.last_sequence).where(outbox_streams.c.stream == stream)
                )
            ).scalar_one_or_none()
            if last is None:
                msg = f"no events for {stream!r}"
                raise LookupError(msg)
            # Waits for a relay's claim of the stream (PostgreSQL), then moves the cursor.
            moved = await connection.execute(
                update(outbox_cursors)
                .where(
                    outbox_cursors.c.stream == stream,
                    outbox_cursors.c.published_sequence > after,
                )
                .values(
                    published_sequence=after,
                    failures=0,
                    rejections=0,
                    retry_at=None,
                    last_error=None,
                )
            )
            if not moved.rowcount:
                return 0
            if self._postgres:
                await connection.execute(select(func.pg_notify(NOTIFY_CHANNEL, stream)))
            await transaction.commit()
        return int(last) - after

    async def last_sequence(self, stream: str) -> int | None:
        """The stream's last event's sequence; None for a stream that never had one."""
        async with self._uow.begin(read_only=True):
            last = await current_connection().scalar(
                select(outbox_streams.c.last_sequence).where(outbox_streams.c.stream == stream)
            )
        return None if last is None else int(last)

    async def last_sequences(self, streams: Collection[str]) -> dict[str, int]:
        """Each stream's last event's sequence; a stream that never had one is absent.

        One query per ``STREAMS_PER_QUERY`` streams, in one read-only transaction.
        """
        wanted = list(streams)
        lasts: dict[str, int] = {}
        async with self._uow.begin(read_only=True):
            for start in range(0, len(wanted), STREAMS_PER_QUERY):
                rows = await current_connection().execute(
                    select(outbox_streams.c.stream, outbox_streams.c.last_sequence).where(
                        outbox_streams.c.stream.in_(wanted[start : start + STREAMS_PER_QUERY])
                    )
                )
                lasts.update((row.stream, int(row.last_sequence)) for row in rows)
        return lasts

    async def read(self, stream: str, *, after: int = 0, limit: int = 1000) -> list[Envelope]:
        """Up to ``limit`` of the stream's events after sequence ``after``, in order."""
        async with self._uow.begin(read_only=True):
            rows = await current_connection().execute(
                select(outbox_events)
                .where(outbox_events.c.stream == stream, outbox_events.c.sequence > after)
                .order_by(outbox_events.c.sequence)
                .limit(limit)
            )
            return [envelope_of(row) for row in rows]

    async def lag(self) -> list[StreamLag]:
        oldest = (
            select(func.min(outbox_events.c.time))
            .where(
                outbox_events.c.stream == outbox_cursors.c.stream,
                outbox_events.c.sequence == outbox_cursors.c.published_sequence + 1,
            )
            .scalar_subquery()
        )
        async with self._uow.begin(read_only=True):
            rows = await current_connection().execute(
                select(
                    outbox_cursors.c.stream,
                    outbox_streams.c.last_sequence,
                    outbox_cursors.c.published_sequence,
                    oldest,
                    outbox_cursors.c.failures,
                    outbox_cursors.c.last_error,
                )
                .join(outbox_streams, outbox_streams.c.stream == outbox_cursors.c.stream)
                .order_by(outbox_cursors.c.stream)
            )
            return [StreamLag(*row) for row in rows]

    async def dead_letters(self) -> list[DeadLetter]:
        async with self._uow.begin(read_only=True):
            rows = await current_connection().execute(
                select(
                    outbox_dead_letters.c.stream,
                    outbox_dead_letters.c.sequence,
                    outbox_dead_letters.c.id,
                    outbox_dead_letters.c.reason,
                    outbox_dead_letters.c.dead_at,
                ).order_by(outbox_dead_letters.c.dead_at, outbox_dead_letters.c.stream)
            )
            return [DeadLetter(*row) for row in rows]

    async def relay_alive(self, relay: RelayIdentity, *, forget_after: timedelta) -> None:
        """Record that ``relay`` is alive now; forget relays silent for over ``forget_after``.

        The relay's row is made if missing (its first time, or forgotten while it could not
        reach the database), so there is no separate registration to get right.
        """
        now = self._now()
        async with self._uow.begin() as transaction:
            connection = current_connection()
            refreshed = await connection.execute(
                update(outbox_relays).where(outbox_relays.c.id == relay.id).values(last_seen_at=now)
            )
            if not refreshed.rowcount:
                destination = without_credentials(relay.destination)[:_DESTINATION_LENGTH]
                await connection.execute(
                    insert(outbox_relays).values(
                        id=relay.id,
                        publisher=relay.publisher,
                        destination=destination,
                        host=relay.host,
                        pid=relay.pid,
                        command=relay.command,
                        started_at=relay.started_at,
                        last_seen_at=now,
                    )
                )
            await connection.execute(
                delete(outbox_relays).where(outbox_relays.c.last_seen_at < now - forget_after)
            )
            await transaction.commit()

    async def relay_stopped(self, relay_id: str) -> None:
        """The relay stopped cleanly: it is no longer listed."""
        async with self._uow.begin() as transaction:
            await current_connection().execute(
                delete(outbox_relays).where(outbox_relays.c.id == relay_id)
            )
            await transaction.commit()

    async def relays(self) -> list[RelaySeen]:
        """The relays recorded, the most recently seen first."""
        async with self._uow.begin(read_only=True):
            rows = await current_connection().execute(
                select(outbox_relays).order_by(
                    outbox_relays.c.last_seen_at.desc(), outbox_relays.c.id
                )
            )
            return [
                RelaySeen(
                    RelayIdentity(
                        id=row.id,
                        publisher=row.publisher,
                        destination=row.destination,
                        host=row.host,
                        pid=row.pid,
                        command=row.command,
                        started_at=row.started_at,
                    ),
                    row.last_seen_at,
                )
                for row in rows
            ]


class Claim:
    """One stream's next unpublished events, and the ways to record how publishing went."""

    def __init__(self, store: OutboxStore, cursor: Cursor, envelopes: list[Envelope]) -> None:
        self._store = store
        self.cursor = cursor
        self.envelopes = envelopes

    @property
    def stream(self) -> str:
        return self.cursor.stream

    async def published(self, upto: int) -> None:
        """Everything up to sequence ``upto`` is on the broker; failures are forgotten."""
        async with self._store._writing():  # noqa: SLF001 - claim and store are one unit
            await self._store._move_cursor(  # noqa: SLF001
                self.cursor, published=upto, failures=0, rejections=0, retry_at=None, error=None
            )

    async def failed(self, *, upto: int, retry_at: datetime, error: str) -> None:
        """Not published past ``upto``, for a reason that is not the events' fault."""
        rejections = self.cursor.rejections if upto == self.cursor.published_sequence else 0
        async with self._store._writing():  # noqa: SLF001
            await self._store._move_cursor(  # noqa: SLF001
                self.cursor,
                published=upto,
                failures=self.cursor.failures + 1,
                rejections=rejections,
                retry_at=retry_at,
                error=error,
            )

    async def rejected(
        self,
        envelope: Envelope,
        *,
        upto: int,
        retry_at: datetime,
        error: str,
        max_rejections: int,
    ) -> bool:
        """The broker refused ``envelope`` (the next after ``upto``); True if dead-lettered."""
        moved = upto != self.cursor.published_sequence
        rejections = (0 if moved else self.cursor.rejections) + 1
        async with self._store._writing():  # noqa: SLF001
            if rejections < max_rejections:
                await self._store._move_cursor(  # noqa: SLF001
                    self.cursor,
                    published=upto,
                    failures=self.cursor.failures + 1,
                    rejections=rejections,
                    retry_at=retry_at,
                    error=error,
                )
                return False
            if not await self._store._move_cursor(  # noqa: SLF001
                self.cursor,
                published=envelope.sequence,
                failures=0,
                rejections=0,
                retry_at=None,
                error=error,
            ):
                return False  # another relay got past it (SQLite): its outcome stands
            await _record_dead_letter(envelope, error[:_REASON_LENGTH], self._store._now())  # noqa: SLF001
            return True


async def _record_dead_letter(envelope: Envelope, reason: str, now: datetime) -> None:
    """Record a dead letter; one recorded before a rewind is brought up to date."""
    connection = current_connection()
    key = (
        outbox_dead_letters.c.stream == envelope.ledger,
        outbox_dead_letters.c.sequence == envelope.sequence,
    )
    updated = await connection.execute(
        update(outbox_dead_letters).where(*key).values(reason=reason, dead_at=now)
    )
    if not updated.rowcount:
        await connection.execute(
            insert(outbox_dead_letters).values(
                stream=envelope.ledger,
                sequence=envelope.sequence,
                id=envelope.id,
                reason=reason,
                dead_at=now,
            )
        )


def envelope_of(row: Row[Any]) -> Envelope:
    """An envelope from its ``outbox_events`` row (for readers of the log, such as webhooks)."""
    return Envelope(
        id=row.id,
        source=row.source,
        type=row.type,
        subject=row.subject,
        time=row.time,
        ledger=row.stream,
        sequence=row.sequence,
        data=bytes(row.data),
        datacontenttype=row.datacontenttype,
    )
