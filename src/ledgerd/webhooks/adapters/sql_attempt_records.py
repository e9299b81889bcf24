"""The delivery attempts' retention on the database: the oldest first, in batches.

A batch is one transaction of two statements. The first reads the next ``limit`` attempts
started before the cutoff, in ``(started_at, id)`` order and after where the previous batch
stopped: a range of that index (wh0003), so a batch reads at most ``limit`` rows however large
the table and however many old rows are kept. The second deletes those of them not kept:

- the attempts at an event still dead-lettered for their endpoint (the dead letters' primary
  key answers it): what an operator reads before replaying it;
- each endpoint's last attempt (its cursor names it, ``webhook_cursors.last_attempt_id``,
  written with each attempt): when the endpoint was last tried and how it answered, however
  long ago.

Both are anti-joins on a primary key, and the rows they test are at most ``limit`` ids, so
PostgreSQL probes the two keys. Asked of the attempts themselves ("is there a later attempt of
this endpoint?") the second was planned as a join over the whole table, or a walk of the
primary key backwards past every other endpoint's attempts, when few endpoints share many
attempts: 80 ms to 16 s a batch at 360,000 rows (``bench/attempt_retention.py``, wh0005).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, exists, select, tuple_

from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork, current_connection
from ledgerd.webhooks.adapters.tables import (
    webhook_attempts,
    webhook_cursors,
    webhook_dead_letters,
)
from ledgerd.webhooks.application.ports import AttemptPosition, SweptBatch


class SqlAttemptRecords:
    def __init__(self, uow: SqlAlchemyUnitOfWork) -> None:
        self._uow = uow

    async def delete_older_than(
        self, cutoff: datetime, limit: int, after: AttemptPosition | None = None
    ) -> SweptBatch:
        attempts, dead = webhook_attempts.c, webhook_dead_letters.c
        next_old = select(attempts.id, attempts.started_at).where(attempts.started_at < cutoff)
        if after is not None:
            # A row comparison, which both databases answer from the (started_at, id) index.
            next_old = next_old.where(
                tuple_(attempts.started_at, attempts.id) > tuple_(after.started_at, after.number)
            )
        next_old = next_old.order_by(attempts.started_at, attempts.id).limit(limit)
        cursors = webhook_cursors.c
        still_dead = exists().where(
            and_(dead.webhook_id == attempts.webhook_id, dead.sequence == attempts.sequence)
        )
        the_last = exists().where(
            and_(cursors.webhook_id == attempts.webhook_id, cursors.last_attempt_id == attempts.id)
        )
        async with self._uow.begin() as transaction:
            connection = current_connection()
            read = (await connection.execute(next_old)).all()
            if not read:
                return SweptBatch(deleted=0, read=0, last=None)
            result = await connection.execute(
                delete(webhook_attempts).where(
                    attempts.id.in_([row.id for row in read]), ~still_dead, ~the_last
                )
            )
            await transaction.commit()
        last = read[-1]
        return SweptBatch(
            int(result.rowcount), len(read), AttemptPosition(last.started_at, last.id)
        )
