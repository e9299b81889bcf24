"""Two relays on one SQLite database (``serve`` and a ``worker`` beside it): no cursor goes back.

SQLite claims do not lock (see ``OutboxStore``), so both relays may take the same stream; a
relay whose claim has been overtaken must leave the cursor, and the dead-letter table, as the
faster one left them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork
from ledgerd.platform.messaging.envelope import Envelope
from ledgerd.platform.outbox.store import OutboxStore
from tests.integration.conftest import open_ledger_app
from tests.integration.outbox.helpers import EVERY_CHANGE, make_every_change

RETRY_AT = datetime(2030, 1, 1, tzinfo=UTC)


async def test_an_overtaken_relay_cannot_move_the_cursor_back(sqlite_url: str) -> None:
    async with open_ledger_app(sqlite_url) as app:
        await make_every_change(app, "books")
        slow = OutboxStore(SqlAlchemyUnitOfWork(app.engine))
        fast = OutboxStore(SqlAlchemyUnitOfWork(app.engine))

        async with slow.claim(5) as overtaken:
            assert overtaken is not None
            async with fast.claim(100) as ahead:
                assert ahead is not None
                assert ahead.envelopes == overtaken.envelopes + ahead.envelopes[5:]
                await ahead.published(len(EVERY_CHANGE))
            await overtaken.published(5)
        assert await _published(fast) == len(EVERY_CHANGE)

    async with open_ledger_app(sqlite_url, migrate=False) as app:
        await make_every_change(app, "more")
        slow = OutboxStore(SqlAlchemyUnitOfWork(app.engine))
        fast = OutboxStore(SqlAlchemyUnitOfWork(app.engine))
        async with slow.claim(5) as overtaken, fast.claim(3) as ahead:
            assert overtaken is not None
            assert ahead is not None
            await ahead.published(3)
            first: Envelope = overtaken.envelopes[0]
            await overtaken.failed(upto=0, retry_at=RETRY_AT, error="late news")
            dead = await overtaken.rejected(
                first, upto=0, retry_at=RETRY_AT, error="late refusal", max_rejections=1
            )
        assert dead is False
        assert await fast.dead_letters() == []
        [lag] = [lag for lag in await fast.lag() if lag.stream == "more"]
        assert (lag.published_sequence, lag.failures, lag.last_error) == (3, 0, None)


async def _published(store: OutboxStore) -> int:
    [lag] = await store.lag()
    return lag.published_sequence
