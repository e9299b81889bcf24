"""SQLAlchemy Core implementations of the webhooks' ports (SQLite and PostgreSQL).

They take part in the caller's unit of work (``current_connection``). The ledgers' streams are
read from the outbox (``outbox_streams``): a ledger's ``LedgerCreated`` event is written with the
ledger itself, so a ledger exists exactly when its stream does, and the webhooks learn it from
the events the ledger publishes rather than from the ledger's tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping, delete, func, insert, select, update
from sqlalchemy.sql import ColumnElement

from ledgerd.kernel.ids import check_id_shape
from ledgerd.kernel.paging import Page, decode_cursor, decode_int_cursor, encode_cursor
from ledgerd.platform.auth.sealing import SealingError
from ledgerd.platform.db.unit_of_work import current_connection
from ledgerd.platform.outbox.tables import outbox_streams
from ledgerd.webhooks.adapters.sealed_secrets import WebhookSecretSealing
from ledgerd.webhooks.adapters.tables import (
    webhook_attempts,
    webhook_cursors,
    webhook_dead_letters,
    webhook_endpoints,
    webhook_spent_keys,
)
from ledgerd.webhooks.domain.deliveries import (
    AttemptOutcome,
    DeadLetter,
    DeliveryAttempt,
    DeliveryStatus,
    WebhookView,
)
from ledgerd.webhooks.domain.endpoints import EventFilter, WebhookEndpoint
from ledgerd.webhooks.domain.idempotency import CreationKey, KeyedCreation
from ledgerd.webhooks.domain.repositories import LedgerStream


def endpoint_of(row: RowMapping, sealing: WebhookSecretSealing) -> WebhookEndpoint:
    """The endpoint ``row`` holds, its secrets opened (or unreadable, saying why)."""
    return WebhookEndpoint(
        id=row["id"],
        ledger=row["ledger"],
        url=row["url"],
        description=row["description"],
        filter=EventFilter(frozenset(row["event_types"]), frozenset(row["accounts"])),
        enabled=row["enabled"],
        secrets=sealing.secrets_of(
            row["id"], row["secret"], row["previous_secret"], row["previous_secret_expires_at"]
        ),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        idempotency_key=row["idempotency_key"],
    )


def _settings_of(endpoint: WebhookEndpoint, sealing: WebhookSecretSealing) -> dict[str, Any]:
    """The endpoint's columns but its id and ledger, which never change, the secrets sealed.

    Secrets that could not be opened are left as they are stored (not overwritten by nothing):
    given the key, they open again.
    """
    settings = {
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": sorted(endpoint.filter.event_types),
        "accounts": sorted(endpoint.filter.accounts),
        "enabled": endpoint.enabled,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    }
    if endpoint.secrets.unreadable is None:
        settings |= {
            "secret": sealing.stored(endpoint.id, endpoint.secrets.current),
            "previous_secret": sealing.stored(endpoint.id, endpoint.secrets.previous),
            "previous_secret_expires_at": endpoint.secrets.previous_expires_at,
        }
    return settings


class SqlWebhookRepository:
    def __init__(self, sealing: WebhookSecretSealing) -> None:
        self._sealing = sealing

    async def get(self, webhook_id: str) -> WebhookEndpoint | None:
        row = (
            (
                await current_connection().execute(
                    select(webhook_endpoints).where(webhook_endpoints.c.id == webhook_id)
                )
            )
            .mappings()
            .one_or_none()
        )
        return None if row is None else endpoint_of(row, self._sealing)

    async def add(
        self, endpoint: WebhookEndpoint, *, after_sequence: int, key: CreationKey | None = None
    ) -> None:
        connection = current_connection()
        # A key another creation stored first breaks the unique index: the unit of work turns
        # that into a lost race, and the rerun finds the winner's endpoint.
        await connection.execute(
            insert(webhook_endpoints).values(
                id=endpoint.id,
                ledger=endpoint.ledger,
                idempotency_key=None if key is None else key.key,
                request_fingerprint=None if key is None else key.fingerprint,
                **_settings_of(endpoint, self._sealing),
            )
        )
        await connection.execute(
            insert(webhook_cursors).values(
                webhook_id=endpoint.id, position=after_sequence, failed_attempts=0
            )
        )

    async def save(self, endpoint: WebhookEndpoint) -> None:
        await current_connection().execute(
            update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint.id)
            .values(**_settings_of(endpoint, self._sealing))
        )

    async def created_with(self, ledger: str, key: str) -> KeyedCreation | None:
        connection = current_connection()
        # The endpoints before the spent keys: a deletion moves a key from one to the other in
        # one transaction, so a key missing from the endpoints (on PostgreSQL, each statement
        # reads what was committed when it starts) is among the spent ones if it was deleted.
        # The other order could miss it in both and create its endpoint again.
        row = (
            await connection.execute(
                select(webhook_endpoints.c.id, webhook_endpoints.c.request_fingerprint).where(
                    webhook_endpoints.c.ledger == ledger,
                    webhook_endpoints.c.idempotency_key == key,
                )
            )
        ).one_or_none()
        if row is not None:
            return KeyedCreation(row.id, row.request_fingerprint)
        spent = (
            await connection.execute(
                select(
                    webhook_spent_keys.c.webhook_id, webhook_spent_keys.c.request_fingerprint
                ).where(
                    webhook_spent_keys.c.ledger == ledger,
                    webhook_spent_keys.c.idempotency_key == key,
                )
            )
        ).one_or_none()
        if spent is None:
            return None
        return KeyedCreation(spent.webhook_id, spent.request_fingerprint, deleted=True)

    async def delete(self, webhook_id: str) -> None:
        connection = current_connection()
        # The cursor first: on PostgreSQL this waits for a delivery in flight, which holds it.
        await connection.execute(
            delete(webhook_cursors).where(webhook_cursors.c.webhook_id == webhook_id)
        )
        for table in (webhook_attempts, webhook_dead_letters):
            await connection.execute(delete(table).where(table.c.webhook_id == webhook_id))
        # Its idempotency key stays spent, with what it created, before the row goes.
        await connection.execute(
            insert(webhook_spent_keys).from_select(
                ["ledger", "idempotency_key", "request_fingerprint", "webhook_id"],
                select(
                    webhook_endpoints.c.ledger,
                    webhook_endpoints.c.idempotency_key,
                    webhook_endpoints.c.request_fingerprint,
                    webhook_endpoints.c.id,
                ).where(
                    webhook_endpoints.c.id == webhook_id,
                    webhook_endpoints.c.idempotency_key.is_not(None),
                ),
            )
        )
        await connection.execute(
            delete(webhook_endpoints).where(webhook_endpoints.c.id == webhook_id)
        )

    async def count_in(self, ledger: str) -> int:
        counted = await current_connection().execute(
            select(func.count()).where(webhook_endpoints.c.ledger == ledger)
        )
        return int(counted.scalar_one())


def _dead_letter_count(webhook_id: ColumnElement[str]) -> ColumnElement[int]:
    return (
        select(func.count())
        .where(webhook_dead_letters.c.webhook_id == webhook_id)
        .scalar_subquery()
    )


_VIEW_COLUMNS = (
    *webhook_endpoints.c,
    webhook_cursors.c.position,
    webhook_cursors.c.failed_attempts,
    webhook_cursors.c.retry_at,
    webhook_cursors.c.last_error,
    _dead_letter_count(webhook_endpoints.c.id).label("dead_letters"),
)


def _view_of(row: RowMapping, sealing: WebhookSecretSealing) -> WebhookView:
    return WebhookView(
        endpoint_of(row, sealing),
        DeliveryStatus(
            delivered_sequence=row["position"],
            failed_attempts=row["failed_attempts"],
            next_attempt_at=row["retry_at"],
            last_error=row["last_error"],
            dead_letters=row["dead_letters"],
        ),
    )


def _attempt_of(row: RowMapping) -> DeliveryAttempt:
    return DeliveryAttempt(
        webhook_id=row["webhook_id"],
        sequence=row["sequence"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        attempt=row["attempt"],
        replay=row["replay"],
        started_at=row["started_at"],
        duration_ms=row["duration_ms"],
        status_code=row["status_code"],
        error=row["error"],
        outcome=AttemptOutcome(row["outcome"]),
    )


def _dead_letter_of(row: RowMapping) -> DeadLetter:
    return DeadLetter(
        webhook_id=row["webhook_id"],
        sequence=row["sequence"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        dead_at=row["dead_at"],
        replay_requested=row["replay_requested"],
    )


def _page(rows: Sequence[RowMapping], limit: int) -> tuple[Sequence[RowMapping], bool]:
    """The page's rows, and whether more follow (one row more than a page was asked for)."""
    return rows[:limit], len(rows) > limit


class SqlWebhookReadModel:
    def __init__(self, sealing: WebhookSecretSealing) -> None:
        self._sealing = sealing

    async def view(self, webhook_id: str) -> WebhookView | None:
        row = (
            (
                await current_connection().execute(
                    select(*_VIEW_COLUMNS)
                    .join(webhook_cursors, webhook_cursors.c.webhook_id == webhook_endpoints.c.id)
                    .where(webhook_endpoints.c.id == webhook_id)
                )
            )
            .mappings()
            .one_or_none()
        )
        return None if row is None else _view_of(row, self._sealing)

    async def views(self, ledger: str, *, cursor: str | None, limit: int) -> Page[WebhookView]:
        after = decode_cursor(cursor)
        query = (
            select(*_VIEW_COLUMNS)
            .join(webhook_cursors, webhook_cursors.c.webhook_id == webhook_endpoints.c.id)
            .where(webhook_endpoints.c.ledger == ledger)
            .order_by(webhook_endpoints.c.id)
            .limit(limit + 1)
        )
        if after is not None:
            query = query.where(webhook_endpoints.c.id > check_id_shape(after, "cursor"))
        rows, more = _page((await current_connection().execute(query)).mappings().all(), limit)
        views = [_view_of(row, self._sealing) for row in rows]
        return Page(views, encode_cursor(views[-1].endpoint.id) if more else None)

    async def attempts(
        self, webhook_id: str, *, cursor: str | None, limit: int
    ) -> Page[DeliveryAttempt]:
        before = decode_int_cursor(cursor)
        query = (
            select(webhook_attempts)
            .where(webhook_attempts.c.webhook_id == webhook_id)
            .order_by(webhook_attempts.c.id.desc())
            .limit(limit + 1)
        )
        if before is not None:
            query = query.where(webhook_attempts.c.id < before)
        rows, more = _page((await current_connection().execute(query)).mappings().all(), limit)
        return Page(
            [_attempt_of(row) for row in rows], encode_cursor(rows[-1]["id"]) if more else None
        )

    async def dead_letters(
        self, webhook_id: str, *, cursor: str | None, limit: int
    ) -> Page[DeadLetter]:
        after = decode_int_cursor(cursor)
        query = (
            select(webhook_dead_letters)
            .where(webhook_dead_letters.c.webhook_id == webhook_id)
            .order_by(webhook_dead_letters.c.sequence)
            .limit(limit + 1)
        )
        if after is not None:
            query = query.where(webhook_dead_letters.c.sequence > after)
        rows, more = _page((await current_connection().execute(query)).mappings().all(), limit)
        letters = [_dead_letter_of(row) for row in rows]
        return Page(letters, encode_cursor(letters[-1].sequence) if more else None)


class SqlDeadLetterQueue:
    async def request_replay(self, webhook_id: str, *, from_sequence: int) -> int:
        connection = current_connection()
        marked = await connection.execute(
            update(webhook_dead_letters)
            .where(
                webhook_dead_letters.c.webhook_id == webhook_id,
                webhook_dead_letters.c.sequence >= from_sequence,
            )
            .values(replay_requested=True)
        )
        if marked.rowcount:
            # The replay starts with a fresh set of attempts, at the next round: not after
            # whatever back-off the endpoint's current event is in.
            await connection.execute(
                update(webhook_cursors)
                .where(webhook_cursors.c.webhook_id == webhook_id)
                .values(failed_attempts=0, retry_at=None)
            )
        return int(marked.rowcount)


class OutboxLedgerStreams:
    """A ledger's stream as the outbox holds it: it exists once the ledger does."""

    async def stream_of(self, ledger: str) -> LedgerStream | None:
        last = (
            await current_connection().execute(
                select(outbox_streams.c.last_sequence).where(outbox_streams.c.stream == ledger)
            )
        ).scalar_one_or_none()
        return None if last is None else LedgerStream(ledger, int(last))


async def reseal_secrets(sealing: WebhookSecretSealing) -> tuple[int, list[tuple[str, str]]]:
    """Every endpoint's secrets stored again as a write would store them now.

    For ``ledgerd webhooks reseal``: plain ones sealed, those sealed under a previous key
    sealed under the current one. Returns how many rows were rewritten, and the endpoints
    whose secrets cannot be opened with the keys given, each with the reason (naming the
    wrapping key needed); those are left alone.
    """
    connection = current_connection()
    rows = await connection.execute(
        select(
            webhook_endpoints.c.id, webhook_endpoints.c.secret, webhook_endpoints.c.previous_secret
        ).order_by(webhook_endpoints.c.id)
    )
    rewritten, failed = 0, []
    for webhook_id, secret, previous in rows.all():
        if not (sealing.needs_resealing(secret) or sealing.needs_resealing(previous)):
            continue
        try:
            current_plain = sealing.opened(webhook_id, secret)
            previous_plain = sealing.opened(webhook_id, previous)
        except SealingError as error:
            failed.append((webhook_id, str(error)))
            continue
        await connection.execute(
            update(webhook_endpoints)
            .where(webhook_endpoints.c.id == webhook_id)
            .values(
                secret=sealing.stored(webhook_id, current_plain),
                previous_secret=sealing.stored(webhook_id, previous_plain),
            )
        )
        rewritten += 1
    return rewritten, failed
