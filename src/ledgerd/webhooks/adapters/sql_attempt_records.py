"""The delivery attempts' retention on the database: the oldest first, in batches.

A batch is one transaction of two statements. The first reads the next ``limit`` attempts
started before the cutoff, in ``(started_at, id)`` order and after where the previous batch
stopped: a range of that index (wh0003), so a batch reads at most ``limit`` rows however large
the table and however many old rows are kept. The second deletes those of them not kept:

- the attempts at an event still dead-lettered for their endpoint (the dead letters' primary
  key answers it): what an operator reads before replaying it;
- each endpoint's last attempt (the ``(webhook_id, id)`` index answers whether a later one
  exists): when the endpoint was last tried and how it answered, however long ago.

Two statements rather than one because PostgreSQL plans the checks on a whole table's worth of
old rows badly (with the checks and the order in one statement it joined the whole table, or
walked the primary key backwards past every other endpoint's attempts, per batch: 0.2 to 16 s
a batch at 360,000 rows, ``bench/attempt_retention.py``); on at most ``limit`` ids it probes
the two indexes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, exists, select, tuple_

from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork, current_connection
from ledgerd.webhooks.adapters.tables import webhook_attempts, webhook_dead_letters
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
        later = webhook_attempts.alias("later")
        still_dead = exists().where(
            and_(dead.webhook_id == attempts.webhook_id, dead.sequence == attempts.sequence)
        )
        not_the_last = exists().where(
            and_(later.c.webhook_id == attempts.webhook_id, later.c.id > attempts.id)
        )
        async with self._uow.begin() as transaction:
            connection = current_connection()
            read = (await connection.execute(next_old)).all()
            if not read:
                return SweptBatch(deleted=0, read=0, last=None)
            result = await connection.execute(
                delete(webhook_attempts).where(
                    attempts.id.in_([row.id for row in read]), ~still_dead, not_the_last
                )
            )
            await transaction.commit()
        last = read[-1]
        return SweptBatch(
            int(result.rowcount), len(read), AttemptPosition(last.started_at, last.id)
        )
