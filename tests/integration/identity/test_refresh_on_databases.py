"""Refresh-token rotation and reuse detection through the real use cases over the SQL adapters.

The race — two simultaneous uses of one refresh token, on separate connections — runs on
PostgreSQL, where the two transactions truly overlap; SQLite takes its write lock at BEGIN, so
its writers never do.
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from argon2.profiles import CHEAPEST
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.identity.adapters.sql_repositories import (
    SqlClientRepository,
    SqlRefreshFamilyRepository,
)
from ledgerd.identity.application.authenticate_any_client import (
    ClientIdentification,
    IdentifyClient,
)
from ledgerd.identity.application.authenticate_client import AuthenticateClient
from ledgerd.identity.application.issue_token_pair import IssueTokenPair, TokenPairRequest
from ledgerd.identity.application.refresh_tokens import RefreshRequest, RefreshTokens
from ledgerd.identity.application.token_response import TokenResponse
from ledgerd.identity.domain.clients import ClientKind, OAuthClient
from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.refresh_families import RefreshFamily, RefreshPolicy
from ledgerd.identity.domain.scopes import Scope
from ledgerd.kernel.errors import ConcurrencyConflictError, LedgerdError
from ledgerd.platform.auth.access_tokens import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    TokenAudience,
)
from ledgerd.platform.auth.keys import KeyRing, SigningKeySet
from ledgerd.platform.auth.opaque_tokens import OpaqueTokens
from ledgerd.platform.auth.secret_hashing import SecretHasher
from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork
from tests.fakes.clock import ManualClock
from tests.fakes.ids import SequentialIds

T0 = datetime(2030, 6, 1, 12, 0, 0, 654321, tzinfo=UTC)
NAMES = TokenAudience(issuer="https://ledgerd.test", audience="ledgerd")
POLICY = RefreshPolicy(absolute_lifetime=timedelta(days=30), idle_timeout=timedelta(days=7))
GRANT = AccessGrant(frozenset({Scope.LEDGER_READ}), frozenset({"main"}))
SECRET = "svc-secret"
SERVICE = ClientIdentification("svc", SECRET)
RENDEZVOUS_LIMIT_S = 10


class ReadRendezvous:
    """The SQL family repository, but the first two lookups wait for each other.

    So both refreshes have read the family at the same generation before either writes: the
    race, every time. It also counts the compare-and-set conflicts its updates met.
    """

    def __init__(self) -> None:
        self._inner = SqlRefreshFamilyRepository()
        self._barrier = asyncio.Barrier(2)
        self._meetings = 0
        self.conflicts = 0

    def expect_race(self) -> None:
        self._meetings = 2

    async def find_by_token_digest(self, digest: str) -> RefreshFamily | None:
        family = await self._inner.find_by_token_digest(digest)
        if self._meetings > 0:
            self._meetings -= 1
            async with asyncio.timeout(RENDEZVOUS_LIMIT_S):
                await self._barrier.wait()
        return family

    async def add(self, family: RefreshFamily) -> None:
        await self._inner.add(family)

    async def update(self, family: RefreshFamily, *, read_generation: int) -> None:
        try:
            await self._inner.update(family, read_generation=read_generation)
        except ConcurrencyConflictError:
            self.conflicts += 1
            raise

    async def is_revoked(self, family_id: str) -> bool:
        return await self._inner.is_revoked(family_id)


@dataclass
class Identity:
    uow: SqlAlchemyUnitOfWork
    families: ReadRendezvous
    verifier: AccessTokenVerifier
    token_pair: IssueTokenPair
    refresh: RefreshTokens

    async def is_revoked(self, family_id: str) -> bool:
        async with self.uow.begin(read_only=True):
            return await self.families.is_revoked(family_id)

    async def first_refresh_token(self) -> str:
        pair = await self.token_pair(TokenPairRequest("svc", "alice", GRANT))
        assert pair.refresh_token is not None
        return pair.refresh_token


async def _identity(engine: AsyncEngine) -> Identity:
    """The use cases over the SQL adapters, with one confidential client stored."""
    clock = ManualClock(T0)
    uow = SqlAlchemyUnitOfWork(engine)
    clients, families = SqlClientRepository(), ReadRendezvous()
    hasher = SecretHasher(CHEAPEST)
    ring = KeyRing(SigningKeySet.generate(T0))
    issuer = AccessTokenIssuer(ring, NAMES, timedelta(minutes=15), clock)
    opaque = OpaqueTokens()
    client = OAuthClient("svc", "service", ClientKind.CONFIDENTIAL, hasher.hash(SECRET), GRANT, T0)
    async with uow.begin() as tx:
        await clients.add(client)
        await tx.commit()
    return Identity(
        uow=uow,
        families=families,
        verifier=AccessTokenVerifier(ring, NAMES, clock),
        token_pair=IssueTokenPair(
            uow=uow,
            families=families,
            access_tokens=issuer,
            refresh_tokens=opaque,
            policy=POLICY,
            clock=clock,
            new_id=SequentialIds("fam"),
        ),
        refresh=RefreshTokens(
            identify=IdentifyClient(AuthenticateClient(uow, clients, hasher), uow, clients),
            uow=uow,
            families=families,
            access_tokens=issuer,
            refresh_tokens=opaque,
            clock=clock,
        ),
    )


async def _migrated(url: str) -> AsyncIterator[Identity]:
    engine = create_engine(url)  # at the schema's head already
    try:
        yield await _identity(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def identity(migrated_database_url: str) -> AsyncIterator[Identity]:
    async for setup in _migrated(migrated_database_url):
        yield setup


@pytest.fixture
async def postgres_identity(migrated_postgres_url: str) -> AsyncIterator[Identity]:
    async for setup in _migrated(migrated_postgres_url):
        yield setup


async def _refused(identity: Identity, token: str) -> LedgerdError:
    with pytest.raises(LedgerdError) as refused:
        await identity.refresh(RefreshRequest(SERVICE, token))
    assert refused.value.code is IdentityErrorCode.INVALID_GRANT
    return refused.value


async def test_reusing_a_spent_token_revokes_the_family_and_its_access_tokens(
    identity: Identity,
) -> None:
    first = await identity.first_refresh_token()
    rotated = await identity.refresh(RefreshRequest(SERVICE, first))
    assert rotated.refresh_token is not None
    family_id = identity.verifier.verify(rotated.access_token).family_id
    assert family_id == "fam000001"
    assert not await identity.is_revoked(family_id)

    reused = await _refused(identity, first)

    assert reused.details == {"reason": "reused"}
    # The pipeline's check on the live access token's family: refused from now on.
    assert await identity.is_revoked(family_id)
    # And the newest refresh token, whoever holds it.
    assert (await _refused(identity, rotated.refresh_token)).details == {"reason": "revoked"}


async def test_two_simultaneous_refreshes_of_one_token_make_one_winner_on_postgres(
    postgres_identity: Identity,
) -> None:
    identity = postgres_identity
    token = await identity.first_refresh_token()
    identity.families.expect_race()

    outcomes = await asyncio.gather(
        identity.refresh(RefreshRequest(SERVICE, token)),
        identity.refresh(RefreshRequest(SERVICE, token)),
        return_exceptions=True,
    )

    winners = [outcome for outcome in outcomes if isinstance(outcome, TokenResponse)]
    losers = [outcome for outcome in outcomes if isinstance(outcome, LedgerdError)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert losers[0].code is IdentityErrorCode.INVALID_GRANT
    # Both read the family at generation 0; the loser's compare-and-set matched nothing, and
    # its retry found the token spent: a race on one token is what a stolen copy looks like.
    assert identity.families.conflicts == 1
    assert losers[0].details == {"reason": "reused"}
    winner = winners[0]
    assert winner.refresh_token is not None
    assert identity.verifier.verify(winner.access_token).family_id == "fam000001"
    assert await identity.is_revoked("fam000001")
    assert (await _refused(identity, winner.refresh_token)).details == {"reason": "revoked"}
