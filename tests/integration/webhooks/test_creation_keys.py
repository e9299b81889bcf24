"""CreateWebhook's idempotency keys in storage, on SQLite and PostgreSQL.

The unique index lets any number of endpoints have no key and one alone have a key in a
ledger; a creation that loses the race for a key (on PostgreSQL, a transaction holds the key
uncommitted while it inserts) answers the winner's endpoint as a replay; a replay whose secret
this process cannot open says so and writes nothing; a sealed secret is answered opened.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.webhooks.adapters.tables import webhook_cursors, webhook_endpoints
from ledgerd.webhooks.application.create_webhook import CreateWebhook, CreateWebhookHandler
from ledgerd.webhooks.domain.endpoints import EventFilter, new_signing_secret
from ledgerd.webhooks.domain.idempotency import creation_fingerprint
from tests.integration.conftest import LedgerApp, open_ledger_app
from tests.integration.outbox.helpers import open_books
from tests.integration.webhooks.support import webhook_app

LEDGER = "books"
OTHER = "other"
URL = "https://partner.example/hooks"
KEY = "partner-hooks-1"
# Bounds for a creation stuck behind the held key; not measurements.
WAIT_S = 10.0


async def _create(app: LedgerApp, ledger: str, key: str | None) -> None:
    handler = await app.container.get(CreateWebhookHandler)
    await handler(CreateWebhook(ledger, URL, idempotency_key=key))


def _row(webhook_id: str, ledger: str, key: str | None) -> dict[str, object]:
    now = datetime(2030, 1, 2, tzinfo=UTC)
    return {
        "id": webhook_id,
        "ledger": ledger,
        "url": URL,
        "description": "",
        "event_types": [],
        "accounts": [],
        "enabled": True,
        "secret": new_signing_secret(),
        "created_at": now,
        "updated_at": now,
        "idempotency_key": key,
        "request_fingerprint": None
        if key is None
        else creation_fingerprint(URL, "", EventFilter()),
    }


async def test_one_endpoint_per_key_in_a_ledger_and_any_number_without(
    migrated_database_url: str,
) -> None:
    async with webhook_app(migrated_database_url) as app:
        await open_books(app, LEDGER)
        await open_books(app, OTHER)
        for _ in range(2):
            await _create(app, LEDGER, None)
        await _create(app, LEDGER, KEY)
        await _create(app, OTHER, KEY)
        async with app.engine.begin() as connection:
            await connection.execute(insert(webhook_endpoints).values(_row("a" * 32, LEDGER, None)))
        with pytest.raises(IntegrityError):
            async with app.engine.begin() as connection:
                await connection.execute(
                    insert(webhook_endpoints).values(_row("b" * 32, LEDGER, KEY))
                )
        async with app.engine.connect() as connection:
            keys = (
                await connection.execute(
                    select(webhook_endpoints.c.ledger, webhook_endpoints.c.idempotency_key)
                )
            ).all()
        assert sorted(keys, key=repr) == sorted(
            [(LEDGER, None)] * 3 + [(LEDGER, KEY), (OTHER, KEY)], key=repr
        )


async def _waiting_for_a_lock(app: LedgerApp) -> None:
    """Return once a session of this database waits for a lock (the creation, on the key)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            async with app.engine.connect() as connection:
                waiting = (
                    await connection.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                        )
                    )
                ).scalar_one()
            if waiting:
                return
            await asyncio.sleep(0.02)


async def test_the_loser_of_a_race_for_a_key_answers_the_winners_endpoint(
    migrated_postgres_url: str,
) -> None:
    async with webhook_app(migrated_postgres_url) as app:
        await open_books(app, LEDGER)
        handler = await app.container.get(CreateWebhookHandler)
        winner = _row("c" * 32, LEDGER, KEY)
        async with app.engine.connect() as held:
            # The winner's creation, its key inserted and not yet committed: the loser does not
            # see it, inserts its own and waits on the unique index.
            await held.begin()
            await held.execute(insert(webhook_endpoints).values(winner))
            await held.execute(
                insert(webhook_cursors).values(
                    webhook_id=winner["id"], position=0, failed_attempts=0
                )
            )
            loser = asyncio.create_task(handler(CreateWebhook(LEDGER, URL, idempotency_key=KEY)))
            await _waiting_for_a_lock(app)
            assert not loser.done()
            await held.commit()
        async with asyncio.timeout(WAIT_S):
            answered = await loser
        assert answered.replayed
        assert answered.webhook.endpoint.id == winner["id"]
        assert answered.secret == winner["secret"]
        async with app.engine.connect() as connection:
            ids = (await connection.execute(select(webhook_endpoints.c.id))).scalars().all()
        assert ids == [winner["id"]]


def _wrapping_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


async def test_a_replay_opens_a_sealed_secret_or_says_it_cannot(
    migrated_database_url: str,
) -> None:
    sealed_under = _wrapping_key()
    async with webhook_app(migrated_database_url, signing_keys_secret=sealed_under) as app:
        await open_books(app, LEDGER)
        handler = await app.container.get(CreateWebhookHandler)
        first = await handler(CreateWebhook(LEDGER, URL, idempotency_key=KEY))
        async with app.engine.connect() as connection:
            stored = (await connection.execute(select(webhook_endpoints.c.secret))).scalar_one()
        assert stored.startswith("sealed1.")
        again = await handler(CreateWebhook(LEDGER, URL, idempotency_key=KEY))
        assert (again.replayed, again.secret) == (True, first.secret)

    # Another process, given another wrapping key.
    async with open_ledger_app(
        migrated_database_url, migrate=False, settings={"signing_keys_secret": _wrapping_key()}
    ) as elsewhere:
        handler = await elsewhere.container.get(CreateWebhookHandler)
        with pytest.raises(LedgerdError) as refused:
            await handler(CreateWebhook(LEDGER, URL, idempotency_key=KEY))
        assert refused.value.code is ErrorCode.UNAVAILABLE
        assert first.webhook.endpoint.id in refused.value.message
        async with elsewhere.engine.connect() as connection:
            ids = (await connection.execute(select(webhook_endpoints.c.id))).scalars().all()
        assert ids == [first.webhook.endpoint.id]
