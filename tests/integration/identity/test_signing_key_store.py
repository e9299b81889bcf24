"""The signing key set stored: made once, rotated from the version read, reloaded when rotated."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.identity.adapters import tables
from ledgerd.identity.adapters.signing_keys import (
    KeyRingReloader,
    load_or_create_key_set,
    rotate_key_set,
)
from ledgerd.identity.adapters.sql_repositories import SqlSigningKeyStore
from ledgerd.identity.domain.signing_key_store import StoredKeySet
from ledgerd.kernel.errors import ConcurrencyConflictError
from ledgerd.platform.auth.keys import KeySetError
from ledgerd.platform.auth.sealed_keys import KeySetSealing
from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork

T0 = datetime(2030, 6, 1, 12, 0, 0, 654321, tzinfo=UTC)
LIFETIME = timedelta(minutes=15)
RENDEZVOUS_LIMIT_S = 10


@pytest.fixture
def uow(identity_engine: AsyncEngine) -> SqlAlchemyUnitOfWork:
    return SqlAlchemyUnitOfWork(identity_engine)


STORE = SqlSigningKeyStore()
# No wrapping key: these tests are about storing and versions (test_sealed_key_store seals).
PLAIN = KeySetSealing()


async def _save(uow: SqlAlchemyUnitOfWork, text: str, read_version: int | None) -> StoredKeySet:
    async with uow.begin() as tx:
        saved = await STORE.save(text, read_version=read_version)
        await tx.commit()
    return saved


async def _stored(uow: SqlAlchemyUnitOfWork) -> tuple[int | None, StoredKeySet | None]:
    async with uow.begin(read_only=True):
        return await STORE.version(), await STORE.load()


async def test_saves_follow_the_version_they_read(uow: SqlAlchemyUnitOfWork) -> None:
    assert await _stored(uow) == (None, None)

    assert (await _save(uow, "first", None)).version == 1
    with pytest.raises(ConcurrencyConflictError):
        await _save(uow, "another first", None)
    assert (await _save(uow, "second", 1)).version == 2
    with pytest.raises(ConcurrencyConflictError):
        await _save(uow, "from a stale read", 1)

    version, stored = await _stored(uow)
    assert version == 2
    assert stored is not None
    assert (stored.version, stored.text) == (2, "second")
    # The text holds private keys: a stored set shows its version only.
    assert "second" not in repr(stored)


async def test_a_set_is_made_once_and_then_loaded(uow: SqlAlchemyUnitOfWork) -> None:
    made = await load_or_create_key_set(uow, STORE, T0, PLAIN)
    loaded = await load_or_create_key_set(uow, STORE, T0 + timedelta(hours=1), PLAIN)

    assert made.version == loaded.version == 1
    assert loaded.key_set.current.kid == made.key_set.current.kid
    assert loaded.key_set.to_json() == made.key_set.to_json()


async def test_a_rotation_stores_a_new_signer_and_keeps_the_old_one_verifiable(
    uow: SqlAlchemyUnitOfWork,
) -> None:
    made = await load_or_create_key_set(uow, STORE, T0, PLAIN)

    rotated = await rotate_key_set(uow, STORE, T0 + timedelta(days=1), LIFETIME, PLAIN)

    assert rotated.version == 2
    assert [key.kid for key in rotated.key_set.keys][1:] == [made.key_set.current.kid]
    reloaded = await load_or_create_key_set(uow, STORE, T0 + timedelta(days=1), PLAIN)
    assert reloaded.key_set.to_json() == rotated.key_set.to_json()


async def test_the_first_rotation_on_an_empty_store_makes_the_first_set(
    uow: SqlAlchemyUnitOfWork,
) -> None:
    rotated = await rotate_key_set(uow, STORE, T0, LIFETIME, PLAIN)

    assert rotated.version == 1
    assert len(rotated.key_set.keys) == 1


async def test_a_running_process_reloads_its_ring_after_a_rotation_elsewhere(
    uow: SqlAlchemyUnitOfWork,
) -> None:
    loaded = await load_or_create_key_set(uow, STORE, T0, PLAIN)
    reloader = KeyRingReloader(uow, STORE, loaded, PLAIN)
    ring = reloader.ring
    assert not await reloader.reload_if_rotated()
    assert ring.key_set is loaded.key_set

    # `ledgerd keys rotate`, in another process.
    rotated = await rotate_key_set(uow, STORE, T0 + timedelta(days=1), LIFETIME, PLAIN)

    assert await reloader.reload_if_rotated()
    assert ring.key_set.current.kid == rotated.key_set.current.kid
    assert reloader.version == rotated.version
    assert not await reloader.reload_if_rotated()


async def test_a_stored_set_that_cannot_be_read_leaves_the_ring_as_it_was(
    uow: SqlAlchemyUnitOfWork, identity_engine: AsyncEngine
) -> None:
    loaded = await load_or_create_key_set(uow, STORE, T0, PLAIN)
    reloader = KeyRingReloader(uow, STORE, loaded, PLAIN)
    ring = reloader.ring
    async with identity_engine.begin() as connection:
        await connection.execute(
            update(tables.signing_keys).values(version=2, key_set='{"format": 99}')
        )

    with pytest.raises(KeySetError):
        await reloader.reload_if_rotated()

    assert ring.key_set is loaded.key_set
    assert reloader.version == 1


class LoadRendezvous:
    """The SQL key store, but the first two loads wait for each other before going on.

    So both rotations have read the same version before either saves: the race, every time.
    """

    def __init__(self) -> None:
        self._barrier = asyncio.Barrier(2)
        self._meetings = 2

    async def load(self) -> StoredKeySet | None:
        stored = await STORE.load()
        if self._meetings > 0:
            self._meetings -= 1
            async with asyncio.timeout(RENDEZVOUS_LIMIT_S):
                await self._barrier.wait()
        return stored

    async def version(self) -> int | None:
        return await STORE.version()

    async def save(self, text: str, *, read_version: int | None) -> StoredKeySet:
        return await STORE.save(text, read_version=read_version)


@pytest.fixture
async def postgres_uow(migrated_postgres_url: str) -> AsyncIterator[SqlAlchemyUnitOfWork]:
    # Not on SQLite: its writers take the write lock at BEGIN, one after the other, so two
    # rotations never overlap there (the second rotates the first's set).
    engine = create_engine(migrated_postgres_url)
    try:
        yield SqlAlchemyUnitOfWork(engine)
    finally:
        await engine.dispose()


async def test_of_two_rotations_at_once_one_wins_on_postgres(
    postgres_uow: SqlAlchemyUnitOfWork,
) -> None:
    made = await load_or_create_key_set(postgres_uow, STORE, T0, PLAIN)
    racing = LoadRendezvous()
    later = T0 + timedelta(days=1)

    outcomes = await asyncio.gather(
        rotate_key_set(postgres_uow, racing, later, LIFETIME, PLAIN),
        rotate_key_set(postgres_uow, racing, later, LIFETIME, PLAIN),
        return_exceptions=True,
    )

    winners = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    losers = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert isinstance(losers[0], ConcurrencyConflictError)
    stored = await load_or_create_key_set(postgres_uow, STORE, later, PLAIN)
    assert stored.version == 2
    assert stored.key_set.current.kid == winners[0].key_set.current.kid
    assert [key.kid for key in stored.key_set.keys][1:] == [made.key_set.current.kid]


async def test_two_servers_starting_on_a_new_database_share_one_set_on_postgres(
    postgres_uow: SqlAlchemyUnitOfWork,
) -> None:
    racing = LoadRendezvous()

    first, second = await asyncio.gather(
        load_or_create_key_set(postgres_uow, racing, T0, PLAIN),
        load_or_create_key_set(postgres_uow, racing, T0, PLAIN),
    )

    assert first.version == second.version == 1
    assert first.key_set.to_json() == second.key_set.to_json()
