"""The identity use cases on in-memory fakes, with the real token, hash and randomness blocks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from argon2.profiles import CHEAPEST

from ledgerd.identity.application.authenticate_client import (
    AuthenticateClient,
    ClientCredentials,
)
from ledgerd.identity.application.client_credentials import IssueClientCredentialsToken
from ledgerd.identity.application.issue_token_pair import IssueTokenPair
from ledgerd.identity.application.refresh_tokens import RefreshTokens
from ledgerd.identity.domain.clients import ClientKind, OAuthClient
from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.refresh_families import RefreshPolicy
from ledgerd.identity.domain.scopes import Scope
from ledgerd.platform.auth.access_tokens import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    TokenAudience,
)
from ledgerd.platform.auth.keys import KeyRing, SigningKeySet
from ledgerd.platform.auth.opaque_tokens import OpaqueTokens
from ledgerd.platform.auth.secret_hashing import SecretHasher
from tests.fakes.clock import ManualClock
from tests.fakes.identity_store import (
    FakeClientRepository,
    FakeIdentityUnitOfWork,
    FakeRefreshFamilyRepository,
)
from tests.fakes.ids import SequentialIds

NAMES = TokenAudience(issuer="https://ledgerd.test", audience="ledgerd")
POLICY = RefreshPolicy(absolute_lifetime=timedelta(days=30), idle_timeout=timedelta(days=7))
SERVICE_GRANT = AccessGrant(
    frozenset({Scope.LEDGER_READ, Scope.TRANSFERS_WRITE}), frozenset({"main"})
)
SERVICE = ClientCredentials("svc", "svc-secret")
OTHER = ClientCredentials("other", "other-secret")


@dataclass
class Identity:
    clock: ManualClock
    uow: FakeIdentityUnitOfWork
    clients: FakeClientRepository
    families: FakeRefreshFamilyRepository
    hasher: SecretHasher
    verifier: AccessTokenVerifier
    client_credentials: IssueClientCredentialsToken
    token_pair: IssueTokenPair
    refresh: RefreshTokens

    async def add_client(self, client: OAuthClient) -> None:
        async with self.uow.begin() as tx:
            await self.clients.add(client)
            await tx.commit()

    def confidential(self, credentials: ClientCredentials) -> OAuthClient:
        return OAuthClient(
            credentials.client_id,
            credentials.client_id,
            ClientKind.CONFIDENTIAL,
            self.hasher.hash(credentials.secret),
            SERVICE_GRANT,
            self.clock.now(),
        )


@pytest.fixture
async def identity() -> Identity:
    clock = ManualClock()
    uow = FakeIdentityUnitOfWork()
    clients, families = FakeClientRepository(uow), FakeRefreshFamilyRepository(uow)
    hasher = SecretHasher(CHEAPEST)
    ring = KeyRing(SigningKeySet.generate(clock.now()))
    issuer = AccessTokenIssuer(ring, NAMES, timedelta(minutes=15), clock)
    authenticate = AuthenticateClient(uow, clients, hasher)
    opaque = OpaqueTokens()
    setup = Identity(
        clock=clock,
        uow=uow,
        clients=clients,
        families=families,
        hasher=hasher,
        verifier=AccessTokenVerifier(ring, NAMES, clock),
        client_credentials=IssueClientCredentialsToken(authenticate, issuer),
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
            authenticate=authenticate,
            uow=uow,
            families=families,
            access_tokens=issuer,
            refresh_tokens=opaque,
            clock=clock,
        ),
    )
    await setup.add_client(setup.confidential(SERVICE))
    await setup.add_client(setup.confidential(OTHER))
    return setup
