"""The delivery attempts' retention on the database: the oldest first, in batches.

One statement per batch: the ids of the oldest attempts started before the cutoff, by
``(started_at, id)`` (its index, wh0003: each batch reads the start of the range and stops at
the batch's size, however large the table), less the ones kept whatever their age, then
deleted. Kept:

- the attempts at an event still dead-lettered for their endpoint (the dead letters' primary
  key answers it): what an operator reads before replaying it;
- each endpoint's last attempt (the ``(webhook_id, id)`` index answers whether a later one
  exists): when the endpoint was last tried and how it answered, however long ago.
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
        later = webhook_attempts.alias("later")
        still_dead = exists().where(
            and_(dead.webhook_id == attempts.webhook_id, dead.sequence == attempts.sequence)
        )
        not_the_last = exists().where(
            and_(later.c.webhook_id == attempts.webhook_id, later.c.id > attempts.id)
        )
        doomed = (
            select(attempts.id)
            .where(attempts.started_at < cutoff, ~still_dead, not_the_last)
            .order_by(attempts.started_at, attempts.id)
            .limit(limit)
        )
        async with self._uow.begin() as transaction:
            result = await current_connection().execute(
                delete(webhook_attempts).where(attempts.id.in_(doomed.scalar_subquery()))
            )
            await transaction.commit()
        return int(result.rowcount)
