"""What the webhook delivery tests share: a fast-retrying app, its dispatcher, endpoints."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.webhooks.adapters.tables import TABLES
from ledgerd.webhooks.application.create_webhook import (
    CreatedWebhook,
    CreateWebhook,
    CreateWebhookHandler,
)
from ledgerd.webhooks.application.dispatch import WebhookDispatcher
from ledgerd.webhooks.application.queries import WebhookQueries
from ledgerd.webhooks.domain.deliveries import DeadLetter, DeliveryAttempt
from tests.integration.conftest import LedgerApp, dump_tables, open_ledger_app

# Retries in tens of milliseconds, so that back-offs and dead letters take no time in tests.
FAST_RETRIES: Mapping[str, Any] = {
    "webhooks_first_retry_seconds": 0.01,
    "webhooks_max_retry_seconds": 0.04,
    "webhooks_max_attempts": 3,
    "webhooks_timeout_seconds": 2.0,
    "webhooks_poll_interval_seconds": 0.05,
    "webhooks_concurrency": 4,
    # The receivers listen on 127.0.0.1, which deliveries may not reach unless allowed.
    "webhooks_allowed_networks": "127.0.0.0/8",
}
# Bounds for a dispatcher that hangs, to fail the test rather than stall it; not measurements.
STOP_WAIT_S = 10.0


@contextlib.asynccontextmanager
async def webhook_app(url: str, **settings: object) -> AsyncIterator[LedgerApp]:
    async with open_ledger_app(url, settings={**FAST_RETRIES, **settings}) as app:
        yield app


@contextlib.asynccontextmanager
async def dispatching(app: LedgerApp) -> AsyncIterator[WebhookDispatcher]:
    """The app's dispatcher, running until the block ends (then stopped as a worker stops it)."""
    dispatcher = await app.container.get(WebhookDispatcher)
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop), name="test-dispatcher")
    try:
        yield dispatcher
    finally:
        stop.set()
        async with asyncio.timeout(STOP_WAIT_S):
            await running


async def register(
    app: LedgerApp,
    ledger: str,
    url: str,
    *,
    event_types: tuple[str, ...] = (),
    accounts: tuple[str, ...] = (),
) -> CreatedWebhook:
    create = await app.container.get(CreateWebhookHandler)
    return await create(CreateWebhook(ledger, url, event_types=event_types, accounts=accounts))


async def attempts(app: LedgerApp, ledger: str, webhook: str) -> list[DeliveryAttempt]:
    """Every attempt at ``webhook``, the oldest first."""
    queries = await app.container.get(WebhookQueries)
    page = await queries.attempts(ledger, webhook, limit=1000)
    assert page.next_cursor is None
    return list(reversed(page.items))


async def dead_letters(app: LedgerApp, ledger: str, webhook: str) -> list[DeadLetter]:
    queries = await app.container.get(WebhookQueries)
    page = await queries.dead_letters(ledger, webhook, limit=1000)
    return list(page.items)


async def settled(app: LedgerApp, ledger: str, webhook: str, count: int) -> list[DeliveryAttempt]:
    """The attempts at ``webhook`` once ``count`` are recorded (polling the database)."""
    async with asyncio.timeout(STOP_WAIT_S * 2):
        while True:
            recorded = await attempts(app, ledger, webhook)
            if len(recorded) >= count:
                return recorded
            await asyncio.sleep(0.02)


async def webhook_tables(engine: AsyncEngine) -> Any:  # noqa: ANN401 - rows of any table
    """Every table the ledger dumps, and the webhooks context's rows: to show nothing changed."""
    tables = await dump_tables(engine)
    async with engine.connect() as connection:
        for table in TABLES:
            rows = (await connection.execute(select(table))).all()
            tables[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return tables
