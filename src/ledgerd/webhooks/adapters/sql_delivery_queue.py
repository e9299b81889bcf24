"""The delivery queue on the database: which endpoints have work, and one endpoint's claim.

An endpoint's work is the ledger's events after its cursor (``webhook_cursors.position``) that
its filter matches, and before them its dead letters asked to be replayed. The events are read
from the outbox's log (``outbox_events``), where every event stays.

On PostgreSQL a claim is a transaction holding the endpoint's cursor row (``FOR UPDATE SKIP
LOCKED``) from the read of its next event until the attempt is recorded: any number of
dispatchers, in any number of processes, never deliver to one endpoint at once, and one that
dies mid-request loses the lock with its transaction, so another takes the endpoint from the
last recorded place (sending that event again: delivery is at least once). Each attempt in
flight holds a pooled connection meanwhile, which is why ``LEDGERD_WEBHOOKS_CONCURRENCY`` must
stay below the pool's size.

SQLite has no row locks, and holding its write lock through an HTTP request would stop every
posting, so there a claim only reads, and the outcome is recorded in a short write
transaction of its own, only if the cursor is still as the claim found it (compare and set).
The embedded database runs one dispatcher (in ``ledgerd serve``); if a second one runs on the
same file anyway, both may deliver the same event, but neither moves a cursor back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, exists, insert, or_, select, update

from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork, current_connection
from ledgerd.platform.outbox.store import envelope_of
from ledgerd.platform.outbox.tables import outbox_events, outbox_streams
from ledgerd.webhooks.adapters.event_documents import accounts_of, delivery_document
from ledgerd.webhooks.adapters.sealed_secrets import WebhookSecretSealing
from ledgerd.webhooks.adapters.sql_repositories import endpoint_of
from ledgerd.webhooks.adapters.tables import (
    ERROR,
    webhook_attempts,
    webhook_cursors,
    webhook_dead_letters,
    webhook_endpoints,
)
from ledgerd.webhooks.application.ports import Schedule
from ledgerd.webhooks.domain.deliveries import AttemptOutcome, DeliveryAttempt
from ledgerd.webhooks.domain.endpoints import WebhookEndpoint
from ledgerd.webhooks.domain.signatures import Delivery

_ERROR_LENGTH = ERROR.length or 1000
# Events looked at per claim for one that matches the endpoint's filter: a narrow filter on a
# busy ledger moves past the others in steps of this many, each step a short transaction.
SCAN_LIMIT = 500


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _clipped(error: str | None) -> str | None:
    return None if error is None else error[:_ERROR_LENGTH]


@dataclass(frozen=True, slots=True)
class _Held:
    """The cursor as the claim found it: what its outcome is recorded against."""

    webhook_id: str
    position: int
    failed_attempts: int


class SqlDeliveryQueue:
    def __init__(
        self,
        uow: SqlAlchemyUnitOfWork,
        *,
        sealing: WebhookSecretSealing,
        scan_limit: int = SCAN_LIMIT,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._uow = uow
        self._sealing = sealing
        self._scan_limit = scan_limit
        self._now = now
        self._postgres = uow.dialect_name == "postgresql"

    async def schedule(self, now: datetime) -> Schedule:
        replays = exists().where(
            webhook_dead_letters.c.webhook_id == webhook_cursors.c.webhook_id,
            webhook_dead_letters.c.replay_requested,
        )
        async with self._uow.begin(read_only=True):
            rows = (
                await current_connection().execute(
                    select(webhook_cursors.c.webhook_id, webhook_cursors.c.retry_at)
                    .join(webhook_endpoints, webhook_endpoints.c.id == webhook_cursors.c.webhook_id)
                    .join(outbox_streams, outbox_streams.c.stream == webhook_endpoints.c.ledger)
                    .where(
                        webhook_endpoints.c.enabled,
                        or_(outbox_streams.c.last_sequence > webhook_cursors.c.position, replays),
                    )
                    .order_by(webhook_cursors.c.webhook_id)
                )
            ).all()
        due = tuple(webhook for webhook, retry_at in rows if retry_at is None or retry_at <= now)
        waiting = [
            retry_at for _webhook, retry_at in rows if retry_at is not None and retry_at > now
        ]
        return Schedule(due, min(waiting, default=None))

    @asynccontextmanager
    async def claim(self, webhook_id: str, now: datetime) -> AsyncIterator[SqlDeliveryClaim | None]:
        if self._postgres:
            async with self._uow.begin() as transaction:
                claim = await self._claim(webhook_id, now, lock=True)
                yield claim
                if claim is not None:
                    await transaction.commit()
            return
        async with self._uow.begin(read_only=True):
            claim = await self._claim(webhook_id, now, lock=False)
        yield claim

    async def record_interrupted(self, attempt: DeliveryAttempt) -> None:
        async with self._uow.begin() as transaction:
            connection = current_connection()
            # Only for an endpoint still there: it may have been deleted meanwhile.
            known = await connection.execute(
                select(webhook_endpoints.c.id).where(webhook_endpoints.c.id == attempt.webhook_id)
            )
            if known.one_or_none() is None:
                return
            await _insert_attempt(attempt, cursor_held=False)
            await transaction.commit()

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Where a claim records: its own transaction (PostgreSQL), or a new short one."""
        if self._postgres:
            yield
            return
        async with self._uow.begin() as transaction:
            yield
            await transaction.commit()

    def now(self) -> datetime:
        return self._now()

    async def _claim(
        self, webhook_id: str, now: datetime, *, lock: bool
    ) -> SqlDeliveryClaim | None:
        query = (
            select(
                webhook_cursors.c.position,
                webhook_cursors.c.failed_attempts,
                *webhook_endpoints.c,
            )
            .join(webhook_endpoints, webhook_endpoints.c.id == webhook_cursors.c.webhook_id)
            .where(
                webhook_cursors.c.webhook_id == webhook_id,
                webhook_endpoints.c.enabled,
                or_(webhook_cursors.c.retry_at.is_(None), webhook_cursors.c.retry_at <= now),
            )
        )
        if lock:
            query = query.with_for_update(of=webhook_cursors, skip_locked=True)
        row = (await current_connection().execute(query)).mappings().one_or_none()
        if row is None:
            return None
        held = _Held(webhook_id, row["position"], row["failed_attempts"])
        endpoint = endpoint_of(row, self._sealing)
        replay = await self._replay_of(endpoint)
        if replay is not None:
            return SqlDeliveryClaim(self, endpoint, held, replay, skipped_to=held.position)
        return await self._next_of(endpoint, held)

    async def _replay_of(self, endpoint: WebhookEndpoint) -> Delivery | None:
        """The endpoint's first dead letter asked to be replayed, as a delivery."""
        event = (
            await current_connection().execute(
                select(outbox_events)
                .join(
                    webhook_dead_letters,
                    (webhook_dead_letters.c.sequence == outbox_events.c.sequence)
                    & (outbox_events.c.stream == endpoint.ledger),
                )
                .where(
                    webhook_dead_letters.c.webhook_id == endpoint.id,
                    webhook_dead_letters.c.replay_requested,
                )
                .order_by(webhook_dead_letters.c.sequence)
                .limit(1)
            )
        ).one_or_none()
        if event is None:
            return None
        envelope = envelope_of(event)
        return Delivery(
            envelope.sequence, envelope.id, envelope.type, delivery_document(envelope), replay=True
        )

    async def _next_of(self, endpoint: WebhookEndpoint, held: _Held) -> SqlDeliveryClaim:
        """The claim of the next event the endpoint's filter matches, looking so far at most."""
        rows = (
            await current_connection().execute(
                select(outbox_events)
                .where(
                    outbox_events.c.stream == endpoint.ledger,
                    outbox_events.c.sequence > held.position,
                )
                .order_by(outbox_events.c.sequence)
                .limit(self._scan_limit)
            )
        ).all()
        skipped_to = held.position
        for row in rows:
            envelope = envelope_of(row)
            concerned = accounts_of(envelope) if endpoint.filter.needs_accounts else frozenset()
            if endpoint.filter.matches(envelope.type, concerned):
                delivery = Delivery(
                    envelope.sequence, envelope.id, envelope.type, delivery_document(envelope)
                )
                return SqlDeliveryClaim(self, endpoint, held, delivery, skipped_to=skipped_to)
            skipped_to = envelope.sequence
        more = len(rows) == self._scan_limit
        return SqlDeliveryClaim(self, endpoint, held, None, skipped_to=skipped_to, more=more)


class SqlDeliveryClaim:
    """One endpoint held, its next delivery, and the recording of how the attempt went."""

    def __init__(  # noqa: PLR0913 - what the claim found, each named
        self,
        queue: SqlDeliveryQueue,
        endpoint: WebhookEndpoint,
        held: _Held,
        delivery: Delivery | None,
        *,
        skipped_to: int,
        more: bool = False,
    ) -> None:
        self._queue, self._held = queue, held
        self.endpoint, self.delivery, self.more = endpoint, delivery, more
        # Before the delivery, the events looked at that the filter did not match end here.
        self._skipped_to = skipped_to

    @property
    def failed_attempts(self) -> int:
        return self._held.failed_attempts

    async def skip(self) -> None:
        """The events looked at did not match: the endpoint is through them."""
        if self._skipped_to == self._held.position:
            return
        async with self._queue.writing():
            # A filter changed while an event was failing may no longer match it: its
            # attempts and back-off went with it.
            await self._move(self._skipped_to, failed_attempts=0, retry_at=None, error=None)

    async def record(self, attempt: DeliveryAttempt, *, retry_at: datetime | None) -> None:
        delivery = self.delivery
        if delivery is None:
            msg = "a claim without a delivery records no attempt"
            raise RuntimeError(msg)
        outcome = attempt.outcome
        async with self._queue.writing():
            if outcome is AttemptOutcome.FAILED:
                moved = await self._move(
                    self._skipped_to,
                    failed_attempts=attempt.attempt,
                    retry_at=retry_at,
                    error=attempt.error,
                )
            elif delivery.replay:
                # The cursor stays where it is: a replay delivers an event it is past.
                moved = await self._move(
                    self._held.position, failed_attempts=0, retry_at=None, error=attempt.error
                )
            else:
                moved = await self._move(
                    delivery.sequence, failed_attempts=0, retry_at=None, error=attempt.error
                )
            if not moved:
                return  # another dispatcher got further (SQLite), or the endpoint is gone
            await _insert_attempt(attempt)
            if outcome is AttemptOutcome.DEAD_LETTERED:
                await self._dead_letter(attempt)
            elif outcome is AttemptOutcome.DELIVERED and delivery.replay:
                await current_connection().execute(
                    delete(webhook_dead_letters).where(
                        webhook_dead_letters.c.webhook_id == attempt.webhook_id,
                        webhook_dead_letters.c.sequence == attempt.sequence,
                    )
                )

    async def _move(
        self, position: int, *, failed_attempts: int, retry_at: datetime | None, error: str | None
    ) -> bool:
        """Set the cursor, if it is still as claimed (SQLite: see the module); whether it was."""
        moved = await current_connection().execute(
            update(webhook_cursors)
            .where(
                webhook_cursors.c.webhook_id == self._held.webhook_id,
                webhook_cursors.c.position == self._held.position,
                webhook_cursors.c.failed_attempts == self._held.failed_attempts,
            )
            .values(
                position=position,
                failed_attempts=failed_attempts,
                retry_at=retry_at,
                last_error=_clipped(error),
            )
        )
        return bool(moved.rowcount)

    async def _dead_letter(self, attempt: DeliveryAttempt) -> None:
        """Record the dead letter, or bring one replayed in vain up to date."""
        connection = current_connection()
        values: dict[str, Any] = {
            "attempts": attempt.attempt,
            "last_error": _clipped(attempt.error) or "",
            "dead_at": self._queue.now(),
            "replay_requested": False,
        }
        key = (
            webhook_dead_letters.c.webhook_id == attempt.webhook_id,
            webhook_dead_letters.c.sequence == attempt.sequence,
        )
        updated = await connection.execute(update(webhook_dead_letters).where(*key).values(values))
        if not updated.rowcount:
            await connection.execute(
                insert(webhook_dead_letters).values(
                    webhook_id=attempt.webhook_id,
                    sequence=attempt.sequence,
                    event_id=attempt.event_id,
                    event_type=attempt.event_type,
                    **values,
                )
            )


async def _insert_attempt(attempt: DeliveryAttempt, *, cursor_held: bool = True) -> None:
    """The attempt's row, and its number as the endpoint's last (which the retention keeps).

    ``cursor_held`` False (an attempt a shutdown cut short, recorded after its claim ended): the
    cursor is marked only if no other dispatcher holds it now, without waiting; one that does
    records a later attempt of its own as the last.
    """
    connection = current_connection()
    inserted = await connection.execute(
        insert(webhook_attempts)
        .values(
            webhook_id=attempt.webhook_id,
            sequence=attempt.sequence,
            event_id=attempt.event_id,
            event_type=attempt.event_type,
            attempt=attempt.attempt,
            replay=attempt.replay,
            started_at=attempt.started_at,
            duration_ms=attempt.duration_ms,
            status_code=attempt.status_code,
            error=_clipped(attempt.error),
            outcome=attempt.outcome.value,
        )
        .returning(webhook_attempts.c.id)
    )
    if not cursor_held:
        free = await connection.execute(
            select(webhook_cursors.c.webhook_id)
            .where(webhook_cursors.c.webhook_id == attempt.webhook_id)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer anyway
        )
        if free.one_or_none() is None:
            return
    await connection.execute(
        update(webhook_cursors)
        .where(webhook_cursors.c.webhook_id == attempt.webhook_id)
        .values(last_attempt_id=inserted.scalar_one())
    )
