"""Webhook signing secrets sealed at rest, on SQLite and PostgreSQL, with a real receiver.

The stored row holds no byte of the secret; deliveries still verify with the docs' algorithm;
rows written plain keep working and are sealed by a reseal; rotating the wrapping key (the old
one as ``_PREVIOUS``) keeps them readable until resealed under the new one; a row sealed under
a key not given fails that endpoint's deliveries alone, saying which key it needs; a sealed
secret copied onto another endpoint's row does not open there.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from typing import Any

from sqlalchemy import select, update
from typer.testing import CliRunner, Result

from ledgerd.main.cli import app
from ledgerd.platform.auth.wrapping_keys import WrappingKey
from ledgerd.webhooks.adapters.sealed_secrets import WebhookSecretSealing
from ledgerd.webhooks.adapters.sql_repositories import reseal_secrets
from ledgerd.webhooks.adapters.tables import webhook_endpoints
from ledgerd.webhooks.application.rotate_secret import (
    RotateWebhookSecret,
    RotateWebhookSecretHandler,
)
from ledgerd.webhooks.domain.deliveries import AttemptOutcome
from tests.integration.conftest import LedgerApp
from tests.integration.outbox.helpers import open_books, pay
from tests.integration.webhooks.support import dispatching, register, settled, webhook_app
from tests.webhook_receiver import receiving, signed_by

LEDGER = "books"


def _new_key() -> tuple[str, WrappingKey]:
    raw = secrets.token_bytes(32)
    return base64.b64encode(raw).decode(), WrappingKey(raw)


def _keys(current: str | None, *previous: str) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if current is not None:
        settings["signing_keys_secret"] = current
    if previous:
        settings["signing_keys_secret_previous"] = ",".join(previous)
    return settings


async def _stored(app: LedgerApp, webhook_id: str) -> tuple[str, str | None]:
    async with app.engine.connect() as connection:
        row = (
            await connection.execute(
                select(webhook_endpoints.c.secret, webhook_endpoints.c.previous_secret).where(
                    webhook_endpoints.c.id == webhook_id
                )
            )
        ).one()
    return row.secret, row.previous_secret


def _holds_no_secret(stored: str | None, *plain: str) -> bool:
    """Whether ``stored`` shows none of ``plain``, whole or its random hex part, in any case."""
    assert stored is not None
    return all(
        part.lower() not in stored.lower()
        for secret in plain
        for part in (secret, secret.removeprefix("whsec_"))
    )


async def _reseal(app: LedgerApp) -> tuple[int, list[tuple[str, str]]]:
    sealing = await app.container.get(WebhookSecretSealing)
    async with app.uow.begin() as transaction:
        result = await reseal_secrets(sealing)
        await transaction.commit()
    return result


async def test_a_secret_is_stored_sealed_and_deliveries_still_verify(
    migrated_database_url: str,
) -> None:
    encoded, key = _new_key()
    async with (
        webhook_app(migrated_database_url, **_keys(encoded)) as app,
        receiving() as receiver,
    ):
        await open_books(app, LEDGER, "bank", "alice")
        created = await register(app, LEDGER, receiver.url("/hook"))
        hook = created.webhook.endpoint.id
        stored, _ = await _stored(app, hook)
        assert stored.startswith(f"sealed1.{key.fingerprint}.")
        assert _holds_no_secret(stored, created.secret)

        rotate = await app.container.get(RotateWebhookSecretHandler)
        rotated = await rotate(RotateWebhookSecret(LEDGER, hook))
        stored, previous = await _stored(app, hook)
        assert _holds_no_secret(stored, created.secret, rotated.secret)
        assert _holds_no_secret(previous, created.secret, rotated.secret)
        assert previous is not None
        assert previous.startswith(f"sealed1.{key.fingerprint}.")

        async with dispatching(app):
            await app.post.post_one(LEDGER, pay("p1", "bank", "alice", 500))
            recorded = await settled(app, LEDGER, hook, 1)
        assert [attempt.outcome for attempt in recorded] == [AttemptOutcome.DELIVERED]
        (arrival,) = receiver.at("/hook")
        assert signed_by(arrival, rotated.secret)


async def test_plain_rows_keep_working_and_a_wrapping_key_rotation_reseals_them(
    migrated_database_url: str,
) -> None:
    first, first_key = _new_key()
    second, second_key = _new_key()
    async with receiving() as receiver:
        async with webhook_app(migrated_database_url) as app:
            await open_books(app, LEDGER, "bank", "alice")
            created = await register(app, LEDGER, receiver.url("/hook"))
            hook = created.webhook.endpoint.id
            assert await _stored(app, hook) == (created.secret, None)  # no key: plain, as before

        async with webhook_app(migrated_database_url, **_keys(first)) as app:
            async with dispatching(app):  # a plain row is read with a key set
                await app.post.post_one(LEDGER, pay("p1", "bank", "alice", 1))
                await settled(app, LEDGER, hook, 1)
            assert await _reseal(app) == (1, [])
            stored, _ = await _stored(app, hook)
            assert stored.startswith(f"sealed1.{first_key.fingerprint}.")
            assert _holds_no_secret(stored, created.secret)
            assert await _reseal(app) == (0, [])  # already as a write would store it

        async with webhook_app(migrated_database_url, **_keys(second, first)) as app:
            async with dispatching(app):  # sealed under the previous key: still opens
                await app.post.post_one(LEDGER, pay("p2", "bank", "alice", 1))
                await settled(app, LEDGER, hook, 2)
            assert await _reseal(app) == (1, [])
            stored, _ = await _stored(app, hook)
            assert stored.startswith(f"sealed1.{second_key.fingerprint}.")

        # The first key retired: the row no longer needs it.
        async with (
            webhook_app(migrated_database_url, **_keys(second)) as app,
            dispatching(app),
        ):
            await app.post.post_one(LEDGER, pay("p3", "bank", "alice", 1))
            recorded = await settled(app, LEDGER, hook, 3)
        assert [attempt.outcome for attempt in recorded] == [AttemptOutcome.DELIVERED] * 3
        arrivals = receiver.at("/hook")
        assert len(arrivals) == 3
        assert all(signed_by(arrival, created.secret) for arrival in arrivals)


async def test_a_row_sealed_under_a_key_not_given_fails_its_endpoint_alone(
    migrated_database_url: str,
) -> None:
    lost, lost_key = _new_key()
    current, current_key = _new_key()
    async with receiving() as receiver:
        async with webhook_app(migrated_database_url, **_keys(lost)) as app:
            await open_books(app, LEDGER, "bank", "alice")
            orphan = await register(app, LEDGER, receiver.url("/orphan"))
        async with webhook_app(migrated_database_url, **_keys(current)) as app:
            healthy = await register(app, LEDGER, receiver.url("/healthy"))
            orphan_id = orphan.webhook.endpoint.id
            async with dispatching(app):
                await app.post.post_one(LEDGER, pay("p1", "bank", "alice", 1))
                await settled(app, LEDGER, healthy.webhook.endpoint.id, 1)
                failed = await settled(app, LEDGER, orphan_id, 1)
            reason = (failed[0].error or "").removeprefix("not sent: ")
            assert await _reseal(app) == (0, [(orphan_id, reason)])
    assert len(receiver.at("/healthy")) == 1
    assert receiver.at("/orphan") == []  # nothing sent unsigned
    error = failed[0].error
    assert failed[0].outcome is AttemptOutcome.FAILED
    assert error is not None
    assert error.startswith("not sent: the webhook secret is sealed under wrapping key")
    assert lost_key.fingerprint in error
    assert current_key.fingerprint in error
    assert lost not in error
    assert current not in error


async def test_a_sealed_secret_copied_onto_another_endpoint_does_not_open(
    migrated_database_url: str,
) -> None:
    encoded, key = _new_key()
    async with (
        webhook_app(migrated_database_url, **_keys(encoded)) as app,
        receiving() as receiver,
    ):
        await open_books(app, LEDGER, "bank", "alice")
        source = await register(app, LEDGER, receiver.url("/source"))
        target = await register(app, LEDGER, receiver.url("/target"))
        copied, _ = await _stored(app, source.webhook.endpoint.id)
        async with app.engine.begin() as connection:
            await connection.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == target.webhook.endpoint.id)
                .values(secret=copied)
            )
        async with dispatching(app):
            await app.post.post_one(LEDGER, pay("p1", "bank", "alice", 1))
            await settled(app, LEDGER, source.webhook.endpoint.id, 1)
            failed = await settled(app, LEDGER, target.webhook.endpoint.id, 1)
    assert receiver.at("/target") == []
    (arrival,) = receiver.at("/source")
    assert signed_by(arrival, source.secret)
    assert failed[0].error == (
        f"not sent: the webhook secret sealed under wrapping key {key.fingerprint} "
        "fails its integrity check"
    )


def _reseal_command(database_url: str, key: str | None) -> Result:
    """``ledgerd webhooks reseal`` on the real command line, in this process (its own loop)."""
    environment = {"LEDGERD_DATABASE_URL": database_url}
    if key is not None:
        environment["LEDGERD_SIGNING_KEYS_SECRET"] = key
    return CliRunner().invoke(app, ["webhooks", "reseal"], env=environment)


async def test_the_reseal_command_needs_a_key_then_seals_what_was_plain(
    migrated_sqlite_url: str,
) -> None:
    async with webhook_app(migrated_sqlite_url) as ledger_app:  # no key: written plain
        await open_books(ledger_app, LEDGER, "bank", "alice")
        created = await register(ledger_app, LEDGER, "https://partner.example/hook")
        hook = created.webhook.endpoint.id
        assert (await _stored(ledger_app, hook))[0] == created.secret

        refused = await asyncio.to_thread(_reseal_command, migrated_sqlite_url, None)
        assert refused.exit_code == 2  # EXIT_ERROR
        assert "LEDGERD_SIGNING_KEYS_SECRET is not set" in refused.stderr
        assert (await _stored(ledger_app, hook))[0] == created.secret

        encoded, key = _new_key()
        resealed = await asyncio.to_thread(_reseal_command, migrated_sqlite_url, encoded)
        assert resealed.exit_code == 0, resealed.stderr
        assert resealed.stdout.startswith("1 webhooks' secrets encrypted")
        stored, _ = await _stored(ledger_app, hook)
        assert stored.startswith(f"sealed1.{key.fingerprint}.")
        assert _holds_no_secret(stored, created.secret)
