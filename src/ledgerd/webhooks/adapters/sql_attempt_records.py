"""The delivery attempts' retention on the database: the oldest first, in batches.

One statement per batch: the ids of the oldest attempts started before the cutoff whose event
is not dead-lettered for their endpoint, by primary key (so PostgreSQL walks the key's index
from its start, where the old rows are, and stops at the batch's size), then deleted.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, exists, select

from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork, current_connection
from ledgerd.webhooks.adapters.tables import webhook_attempts, webhook_dead_letters


class SqlAttemptRecords:
    def __init__(self, uow: SqlAlchemyUnitOfWork) -> None:
        self._uow = uow

    async def delete_older_than(self, cutoff: datetime, limit: int) -> int:
        attempts, dead = webhook_attempts.c, webhook_dead_letters.c
        still_dead = exists().where(
            and_(dead.webhook_id == attempts.webhook_id, dead.sequence == attempts.sequence)
        )
        doomed = (
            select(attempts.id)
            .where(attempts.started_at < cutoff, ~still_dead)
            .order_by(attempts.id)
            .limit(limit)
        )
        async with self._uow.begin() as transaction:
            result = await current_connection().execute(
                delete(webhook_attempts).where(attempts.id.in_(doomed.scalar_subquery()))
            )
            await transaction.commit()
        return int(result.rowcount)
