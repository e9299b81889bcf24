"""The signing key set sealed in the database, on SQLite and PostgreSQL: what the row holds.

The row is read with SQL of the test's own, so "no private key in the database" is checked
where an attacker reading the database would look.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.identity.adapters import tables
from ledgerd.identity.adapters.signing_keys import (
    KeyRingReloader,
    load_or_create_key_set,
    reseal_key_set,
    rotate_key_set,
)
from ledgerd.identity.adapters.sql_repositories import SqlSigningKeyStore
from ledgerd.kernel.principal import Principal
from ledgerd.main.container import build_container
from ledgerd.main.migrations import MIGRATIONS
from ledgerd.main.settings import Settings
from ledgerd.platform.auth.access_tokens import AccessTokenIssuer, AccessTokenVerifier
from ledgerd.platform.auth.keys import SigningKeySet
from ledgerd.platform.auth.sealed_keys import KeySetSealing, SealedKeySetError
from ledgerd.platform.auth.wrapping_keys import WrappingKey
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork

T0 = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
LIFETIME = timedelta(minutes=15)
STORE = SqlSigningKeyStore()


@pytest.fixture
def uow(identity_engine: AsyncEngine) -> SqlAlchemyUnitOfWork:
    return SqlAlchemyUnitOfWork(identity_engine)


def _sealing(*previous: WrappingKey) -> KeySetSealing:
    return KeySetSealing(current=WrappingKey(secrets.token_bytes(32)), previous=previous)


async def _row(engine: AsyncEngine) -> str:
    async with engine.connect() as connection:
        text = (await connection.execute(select(tables.signing_keys.c.key_set))).scalar_one()
    assert isinstance(text, str)
    return text


def _private_parts(key_set: SigningKeySet) -> list[str]:
    return [str(key.jwk.as_dict(private=True)["d"]) for key in key_set.keys]


async def test_a_sealed_set_is_made_rotated_and_reloaded_with_no_private_key_stored(
    uow: SqlAlchemyUnitOfWork, identity_engine: AsyncEngine
) -> None:
    sealing = _sealing()
    made = await load_or_create_key_set(uow, STORE, T0, sealing)
    reloader = KeyRingReloader(uow, STORE, made, sealing)
    assert '"d":' not in await _row(identity_engine)

    rotated = await rotate_key_set(uow, STORE, T0 + timedelta(days=1), LIFETIME, sealing)

    row = await _row(identity_engine)
    assert '"d":' not in row
    for private in _private_parts(rotated.key_set):
        assert private not in row
    assert await reloader.reload_if_rotated()
    assert reloader.ring.key_set.to_json() == rotated.key_set.to_json()


async def test_a_plain_set_is_sealed_by_a_reseal_without_changing_a_key(
    uow: SqlAlchemyUnitOfWork, identity_engine: AsyncEngine
) -> None:
    plain = await load_or_create_key_set(uow, STORE, T0, KeySetSealing())
    assert '"d":' in await _row(identity_engine)
    sealing = _sealing()
    # Read while still plain: a key being set does not stop a server that finds a plain set.
    assert (await load_or_create_key_set(uow, STORE, T0, sealing)).version == plain.version

    resealed = await reseal_key_set(uow, STORE, sealing)

    assert resealed is not None
    assert resealed.written
    assert resealed.stored.version == plain.version + 1
    assert resealed.stored.key_set.to_json() == plain.key_set.to_json()
    assert '"d":' not in await _row(identity_engine)
    again = await reseal_key_set(uow, STORE, sealing)
    assert again is not None
    assert not again.written
    assert again.stored.version == resealed.stored.version


async def test_a_set_under_the_previous_wrapping_key_is_resealed_under_the_current(
    uow: SqlAlchemyUnitOfWork, identity_engine: AsyncEngine
) -> None:
    old = _sealing()
    assert old.current is not None
    made = await load_or_create_key_set(uow, STORE, T0, old)
    new = _sealing(old.current)

    resealed = await reseal_key_set(uow, STORE, new)

    assert resealed is not None
    assert resealed.written
    assert resealed.stored.key_set.to_json() == made.key_set.to_json()
    assert new.current is not None
    assert new.current.fingerprint in await _row(identity_engine)
    with pytest.raises(SealedKeySetError):
        await load_or_create_key_set(uow, STORE, T0, old)


async def test_a_reload_that_cannot_open_the_set_leaves_the_ring_as_it_was(
    uow: SqlAlchemyUnitOfWork,
) -> None:
    sealing = _sealing()
    loaded = await load_or_create_key_set(uow, STORE, T0, sealing)
    reloader = KeyRingReloader(uow, STORE, loaded, sealing)
    # Another process stores a set under a wrapping key this one does not hold.
    elsewhere = SigningKeySet.generate(T0 + timedelta(days=1))
    async with uow.begin() as tx:
        await STORE.save(_sealing().seal(elsewhere), read_version=loaded.version)
        await tx.commit()

    with pytest.raises(SealedKeySetError):
        await reloader.reload_if_rotated()
    assert reloader.ring.key_set.to_json() == loaded.key_set.to_json()


@pytest.fixture
def sealed_settings(database_url: str) -> Settings:
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    return Settings(database_url=database_url, signing_keys_secret=SecretStr(secret))


async def test_the_composed_issuer_and_verifier_work_on_a_sealed_set(
    sealed_settings: Settings,
) -> None:
    container = build_container(sealed_settings)
    try:
        engine = await container.get(AsyncEngine)
        await MIGRATIONS.upgrade(engine)
        issuer = await container.get(AccessTokenIssuer)
        verifier = await container.get(AccessTokenVerifier)
        reader = Principal("client-1", frozenset({"ledger.read"}), frozenset({"main"}))

        verified = verifier.verify(issuer.issue(reader).token)

        assert verified.principal == reader
        assert '"d":' not in await _row(engine)
        assert '"wrapped_by":' in await _row(engine)
    finally:
        await container.close()
