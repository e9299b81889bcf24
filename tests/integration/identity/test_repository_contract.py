"""One contract for the identity context's repository ports, run against every implementation.

The SQL adapters on SQLite and on PostgreSQL, and, for the ports it implements (clients,
refresh families, authorization codes), the in-memory fake the unit tests rely on: it must keep
the same contract. Users, ledger grants and the client directory are tested on the SQL
adapters only.
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from sqlalchemy.exc import IntegrityError

from ledgerd.identity.adapters.sql_repositories import (
    SqlAuthorizationCodeRepository,
    SqlClientRepository,
    SqlRefreshFamilyRepository,
    SqlUserRepository,
)
from ledgerd.identity.domain.authorization_code_repository import AuthorizationCodeRepository
from ledgerd.identity.domain.authorization_codes import (
    CODE_LIFETIME,
    AuthorizationCode,
    s256_challenge,
)
from ledgerd.identity.domain.clients import ClientKind, OAuthClient
from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.ledger_grants import ClientLedgerGrants
from ledgerd.identity.domain.refresh_families import (
    RefreshFamily,
    RefreshPolicy,
    RevocationCause,
    start_family,
)
from ledgerd.identity.domain.repositories import (
    ClientDirectory,
    ClientRepository,
    RefreshFamilyRepository,
    UserRepository,
)
from ledgerd.identity.domain.scopes import Scope
from ledgerd.identity.domain.users import User
from ledgerd.kernel.errors import ConcurrencyConflictError
from ledgerd.kernel.principal import ALL_LEDGERS
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork
from tests.fakes.identity_oauth_store import FakeAuthorizationCodeRepository, OAuthTables
from tests.fakes.identity_store import (
    FakeClientRepository,
    FakeIdentityUnitOfWork,
    FakeRefreshFamilyRepository,
)

# A non-zero microsecond part, so any loss of precision on the way through a database shows.
T0 = datetime(2030, 6, 1, 12, 0, 0, 654321, tzinfo=UTC)
POLICY = RefreshPolicy(
    absolute_lifetime=timedelta(days=30, microseconds=7), idle_timeout=timedelta(days=7)
)
READ_AND_PAY = AccessGrant(
    frozenset({Scope.LEDGER_READ, Scope.TRANSFERS_WRITE}), frozenset({"main", "eu:payouts"})
)
T = TypeVar("T")
ADMIN = AccessGrant(frozenset(Scope), ALL_LEDGERS)
# What the SQL adapters store of a hash is the text: any PHC-shaped string does here.
HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


@dataclass(frozen=True, slots=True)
class IdentityKit:
    uow: UnitOfWork
    clients: ClientRepository
    families: RefreshFamilyRepository
    # None where the implementation has no such port yet.
    users: UserRepository | None
    ledger_grants: ClientLedgerGrants | None
    codes: AuthorizationCodeRepository
    directory: ClientDirectory | None


KitFactory = Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[IdentityKit]]


@asynccontextmanager
async def _sql_kit(url: str) -> AsyncIterator[IdentityKit]:
    engine = create_engine(url)  # at the schema's head already
    try:
        clients = SqlClientRepository()
        yield IdentityKit(
            uow=SqlAlchemyUnitOfWork(engine),
            clients=clients,
            families=SqlRefreshFamilyRepository(),
            users=SqlUserRepository(),
            ledger_grants=clients,
            codes=SqlAuthorizationCodeRepository(),
            directory=clients,
        )
    finally:
        await engine.dispose()


@asynccontextmanager
async def _fake_kit() -> AsyncIterator[IdentityKit]:
    uow = FakeIdentityUnitOfWork(OAuthTables())
    yield IdentityKit(
        uow=uow,
        clients=FakeClientRepository(uow),
        families=FakeRefreshFamilyRepository(uow),
        users=None,
        ledger_grants=None,
        codes=FakeAuthorizationCodeRepository(uow),
        directory=None,
    )


SQL_IMPLEMENTATIONS: Mapping[str, KitFactory] = {
    "sql-sqlite": lambda request: _sql_kit(request.getfixturevalue("migrated_sqlite_url")),
    "sql-postgresql": lambda request: _sql_kit(request.getfixturevalue("migrated_postgres_url")),
}
IMPLEMENTATIONS: Mapping[str, KitFactory] = {
    "fake-in-memory": lambda _request: _fake_kit(),
    **SQL_IMPLEMENTATIONS,
}
_MARKS = {"sql-postgresql": [pytest.mark.postgres]}


def _params(names: Mapping[str, KitFactory]) -> list[object]:
    return [pytest.param(name, marks=_MARKS.get(name, [])) for name in names]


@pytest.fixture(params=_params(IMPLEMENTATIONS))
async def kit(request: pytest.FixtureRequest) -> AsyncIterator[IdentityKit]:
    async with IMPLEMENTATIONS[request.param](request) as repositories:
        yield repositories


@pytest.fixture(params=_params(SQL_IMPLEMENTATIONS))
async def sql_kit(request: pytest.FixtureRequest) -> AsyncIterator[IdentityKit]:
    async with SQL_IMPLEMENTATIONS[request.param](request) as repositories:
        yield repositories


def _confidential(client_id: str = "svc", grant: AccessGrant = READ_AND_PAY) -> OAuthClient:
    return OAuthClient(client_id, f"client {client_id}", ClientKind.CONFIDENTIAL, HASH, grant, T0)


def _public(client_id: str = "spa") -> OAuthClient:
    return OAuthClient(
        client_id,
        "browser app",
        ClientKind.PUBLIC,
        None,
        ADMIN,
        T0,
        redirect_uris=("https://app.example/callback", "http://127.0.0.1:8123/cb"),
        revoked_at=T0 + timedelta(days=1),
    )


def _family(
    family_id: str = "fam1", grant: AccessGrant = READ_AND_PAY, client_id: str = "svc"
) -> RefreshFamily:
    return start_family(
        family_id=family_id,
        client_id=client_id,
        subject="alice",
        grant=grant,
        policy=POLICY,
        first_digest=family_id.ljust(64, "0"),
        now=T0,
    )


async def _committed(kit: IdentityKit, work: Callable[[], Awaitable[object]]) -> None:
    async with kit.uow.begin() as tx:
        await work()
        await tx.commit()


async def _read(kit: IdentityKit, work: Callable[[], Awaitable[T]]) -> T:
    async with kit.uow.begin(read_only=True):
        return await work()


# --- clients ---------------------------------------------------------------------------------


@pytest.mark.parametrize("client", [_confidential(), _public()], ids=["confidential", "public"])
async def test_a_client_round_trips(kit: IdentityKit, client: OAuthClient) -> None:
    await _committed(kit, lambda: kit.clients.add(client))

    assert await _read(kit, lambda: kit.clients.get(client.client_id)) == client
    assert await _read(kit, lambda: kit.clients.get("nobody")) is None


async def test_a_client_id_is_taken_once(kit: IdentityKit) -> None:
    await _committed(kit, lambda: kit.clients.add(_confidential()))

    with pytest.raises(ConcurrencyConflictError):
        await _committed(kit, lambda: kit.clients.add(_confidential(grant=ADMIN)))

    assert await _read(kit, lambda: kit.clients.get("svc")) == _confidential()


async def test_a_client_added_in_a_rolled_back_unit_of_work_is_not_there(kit: IdentityKit) -> None:
    async with kit.uow.begin():
        await kit.clients.add(_confidential())

    assert await _read(kit, lambda: kit.clients.get("svc")) is None


async def test_granting_a_ledger_adds_it_to_the_clients_grant_once(sql_kit: IdentityKit) -> None:
    grants = sql_kit.ledger_grants
    assert grants is not None
    await _committed(sql_kit, lambda: sql_kit.clients.add(_confidential()))
    await _committed(sql_kit, lambda: sql_kit.clients.add(_confidential("root", ADMIN)))

    await _committed(sql_kit, lambda: grants.grant_ledger("svc", "new-ledger"))
    await _committed(sql_kit, lambda: grants.grant_ledger("svc", "new-ledger"))
    await _committed(sql_kit, lambda: grants.grant_ledger("root", "new-ledger"))

    client = await _read(sql_kit, lambda: sql_kit.clients.get("svc"))
    assert client is not None
    assert client.grant.ledgers == frozenset({"main", "eu:payouts", "new-ledger"})
    admin = await _read(sql_kit, lambda: sql_kit.clients.get("root"))
    assert admin is not None
    assert admin.grant.ledgers is ALL_LEDGERS


async def test_a_ledger_is_granted_to_existing_clients_only(sql_kit: IdentityKit) -> None:
    grants = sql_kit.ledger_grants
    assert grants is not None

    with pytest.raises(IntegrityError):
        await _committed(sql_kit, lambda: grants.grant_ledger("nobody", "new-ledger"))


async def test_the_directory_lists_clients_and_revokes_each_once(sql_kit: IdentityKit) -> None:
    directory = sql_kit.directory
    assert directory is not None
    later = replace(_public(), created_at=T0 + timedelta(seconds=1))
    await _committed(sql_kit, lambda: sql_kit.clients.add(later))
    await _committed(sql_kit, lambda: sql_kit.clients.add(_confidential()))
    assert await _read(sql_kit, directory.list_all) == [_confidential(), later]

    revoked_at = T0 + timedelta(hours=2)
    assert await _read_committed(sql_kit, lambda: directory.revoke("svc", revoked_at))
    assert not await _read_committed(sql_kit, lambda: directory.revoke("svc", T0))
    assert not await _read_committed(sql_kit, lambda: directory.revoke("nobody", T0))

    client = await _read(sql_kit, lambda: sql_kit.clients.get("svc"))
    assert client is not None
    assert client.revoked_at == revoked_at
    assert not client.is_active
    assert await _read(sql_kit, directory.list_all) == [client, later]


async def test_the_directory_replaces_an_active_confidential_clients_secret_only(
    sql_kit: IdentityKit,
) -> None:
    directory = sql_kit.directory
    assert directory is not None
    await _committed(sql_kit, lambda: sql_kit.clients.add(_confidential()))
    await _committed(sql_kit, lambda: sql_kit.clients.add(_public()))
    await _committed(sql_kit, lambda: sql_kit.clients.add(_confidential("gone")))
    assert await _read_committed(sql_kit, lambda: directory.revoke("gone", T0))

    assert await _read_committed(sql_kit, lambda: directory.replace_secret("svc", "new-hash"))
    assert not await _read_committed(sql_kit, lambda: directory.replace_secret("spa", "x"))
    assert not await _read_committed(sql_kit, lambda: directory.replace_secret("gone", "x"))
    assert not await _read_committed(sql_kit, lambda: directory.replace_secret("nobody", "x"))

    replaced = await _read(sql_kit, lambda: sql_kit.clients.get("svc"))
    assert replaced == replace(_confidential(), secret_hash="new-hash")
    public = await _read(sql_kit, lambda: sql_kit.clients.get("spa"))
    assert public == _public()


async def _read_committed(kit: IdentityKit, work: Callable[[], Awaitable[T]]) -> T:
    async with kit.uow.begin() as tx:
        result = await work()
        await tx.commit()
    return result


# --- users -----------------------------------------------------------------------------------


def _user(user_id: str = "u1", username: str = "alice", grant: AccessGrant = READ_AND_PAY) -> User:
    return User(user_id, username, HASH, grant, T0)


async def test_a_user_round_trips_by_username(sql_kit: IdentityKit) -> None:
    users = sql_kit.users
    assert users is not None
    disabled = replace(_user("u2", "bob", ADMIN), disabled_at=T0 + timedelta(hours=1))
    await _committed(sql_kit, lambda: users.add(_user()))
    await _committed(sql_kit, lambda: users.add(disabled))

    assert await _read(sql_kit, lambda: users.get_by_username("alice")) == _user()
    assert await _read(sql_kit, lambda: users.get_by_username("bob")) == disabled
    assert await _read(sql_kit, lambda: users.get_by_username("Alice")) is None


async def test_a_username_is_taken_once(sql_kit: IdentityKit) -> None:
    users = sql_kit.users
    assert users is not None
    await _committed(sql_kit, lambda: users.add(_user()))

    with pytest.raises(ConcurrencyConflictError):
        await _committed(sql_kit, lambda: users.add(_user("u2", "alice")))

    assert await _read(sql_kit, lambda: users.get_by_username("alice")) == _user()


# --- refresh families ------------------------------------------------------------------------


async def _with_client_and_family(kit: IdentityKit, family: RefreshFamily) -> None:
    async def setup() -> None:
        await kit.clients.add(_confidential(family.client_id))
        await kit.families.add(family)

    await _committed(kit, setup)


@pytest.mark.parametrize("grant", [READ_AND_PAY, ADMIN], ids=["some-ledgers", "all-ledgers"])
async def test_a_family_is_found_by_its_current_digest(
    kit: IdentityKit, grant: AccessGrant
) -> None:
    family = _family(grant=grant)
    await _with_client_and_family(kit, family)

    assert await _read(kit, lambda: kit.families.find_by_token_digest(family.current_digest)) == (
        family
    )
    assert await _read(kit, lambda: kit.families.find_by_token_digest("f" * 64)) is None
    assert not await _read(kit, lambda: kit.families.is_revoked("fam1"))


async def test_a_rotated_family_is_found_by_every_digest_it_issued(kit: IdentityKit) -> None:
    family = _family()
    await _with_client_and_family(kit, family)
    first = family.current_digest

    second = family.redeem(first, "2" * 64, T0 + timedelta(minutes=5)).family
    await _committed(kit, lambda: kit.families.update(second, read_generation=0))
    third = second.redeem("2" * 64, "3" * 64, T0 + timedelta(minutes=9)).family
    await _committed(kit, lambda: kit.families.update(third, read_generation=1))

    async def found(digest: str) -> RefreshFamily | None:
        async with kit.uow.begin(read_only=True):
            return await kit.families.find_by_token_digest(digest)

    assert [await found(digest) for digest in (first, "2" * 64, "3" * 64)] == [third] * 3
    assert third.generation == 2


async def test_an_update_from_a_stale_generation_is_a_conflict_and_changes_nothing(
    kit: IdentityKit,
) -> None:
    family = _family()
    await _with_client_and_family(kit, family)
    winner = family.redeem(family.current_digest, "2" * 64, T0).family
    loser = family.redeem(family.current_digest, "9" * 64, T0).family
    await _committed(kit, lambda: kit.families.update(winner, read_generation=0))

    with pytest.raises(ConcurrencyConflictError):
        await _committed(kit, lambda: kit.families.update(loser, read_generation=0))

    assert await _read(kit, lambda: kit.families.find_by_token_digest("9" * 64)) is None
    stored = await _read(kit, lambda: kit.families.find_by_token_digest("2" * 64))
    assert stored == winner


async def test_a_revoked_family_says_so_and_keeps_its_cause(kit: IdentityKit) -> None:
    family = _family()
    await _with_client_and_family(kit, family)
    revoked = family.revoke(T0 + timedelta(hours=2), RevocationCause.REUSE_DETECTED)

    await _committed(kit, lambda: kit.families.update(revoked, read_generation=0))

    assert await _read(kit, lambda: kit.families.is_revoked("fam1"))
    stored = await _read(kit, lambda: kit.families.find_by_token_digest(family.current_digest))
    assert stored == revoked
    assert stored is not None
    assert stored.revocation_cause is RevocationCause.REUSE_DETECTED
    # A family never stored is not revoked: the check is for the families that exist.
    assert not await _read(kit, lambda: kit.families.is_revoked("never"))


# --- authorization codes ---------------------------------------------------------------------


def _code(digest: str = "c" * 64, grant: AccessGrant = READ_AND_PAY) -> AuthorizationCode:
    return AuthorizationCode(
        code_digest=digest,
        client_id="svc",
        redirect_uri="https://app.test/cb?tenant=1&x=%20",
        code_challenge=s256_challenge("v" * 43),
        subject="u1",
        grant=grant,
        issued_at=T0,
        expires_at=T0 + CODE_LIFETIME,
    )


@pytest.mark.parametrize("grant", [READ_AND_PAY, ADMIN], ids=["some-ledgers", "all-ledgers"])
async def test_a_code_round_trips_by_digest(kit: IdentityKit, grant: AccessGrant) -> None:
    await _committed(kit, lambda: kit.clients.add(_confidential()))
    await _committed(kit, lambda: kit.codes.add(_code(grant=grant)))

    assert await _read(kit, lambda: kit.codes.find_by_digest("c" * 64)) == _code(grant=grant)
    assert await _read(kit, lambda: kit.codes.find_by_digest("d" * 64)) is None


async def test_a_code_is_redeemed_once_and_stays_findable(kit: IdentityKit) -> None:
    await _committed(kit, lambda: kit.clients.add(_confidential()))
    await _committed(kit, lambda: kit.codes.add(_code()))
    redeemed = replace(_code(), redeemed_at=T0 + timedelta(seconds=5))
    await _committed(kit, lambda: kit.codes.update(redeemed, was_redeemed=False))

    # A second redemption that read the code unredeemed: the compare-and-set refuses it.
    twin = replace(_code(), redeemed_at=T0 + timedelta(seconds=6))
    with pytest.raises(ConcurrencyConflictError):
        await _committed(kit, lambda: kit.codes.update(twin, was_redeemed=False))
    assert await _read(kit, lambda: kit.codes.find_by_digest("c" * 64)) == redeemed

    # Later changes of a redeemed code (its family linked, a reuse flagged) go from redeemed.
    linked = replace(
        redeemed, issued_refresh_digest="f" * 64, reuse_detected_at=T0 + timedelta(seconds=7)
    )
    await _committed(kit, lambda: kit.codes.update(linked, was_redeemed=True))
    assert await _read(kit, lambda: kit.codes.find_by_digest("c" * 64)) == linked
