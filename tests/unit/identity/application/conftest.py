"""The identity use cases on in-memory fakes, with the real token, hash and randomness blocks."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ledgerd.identity.application.authenticate_any_client import ClientIdentification
from ledgerd.identity.application.authenticate_client import ClientCredentials
from ledgerd.identity.application.client_credentials import IssueClientCredentialsToken
from ledgerd.identity.application.issue_token_pair import IssueTokenPair
from ledgerd.identity.application.refresh_tokens import RefreshTokens
from ledgerd.identity.domain.clients import ClientKind, OAuthClient
from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.scopes import Scope
from ledgerd.platform.auth.access_tokens import AccessTokenVerifier
from ledgerd.platform.auth.secret_hashing import SecretHasher
from tests.fakes.clock import ManualClock
from tests.fakes.identity_store import (
    FakeClientRepository,
    FakeIdentityUnitOfWork,
    FakeRefreshFamilyRepository,
)
from tests.unit.identity.oauth_world import POLICY, oauth_world

# POLICY is the tests' refresh policy, which the wiring uses; re-exported for their imports.
__all__ = [
    "APP",
    "OTHER",
    "OTHER_ID",
    "POLICY",
    "SERVICE",
    "SERVICE_GRANT",
    "SERVICE_ID",
    "Identity",
]

SERVICE_GRANT = AccessGrant(
    frozenset({Scope.LEDGER_READ, Scope.TRANSFERS_WRITE}), frozenset({"main"})
)
SERVICE = ClientCredentials("svc", "svc-secret")
OTHER = ClientCredentials("other", "other-secret")
# The two confidential clients as the token endpoint identifies them, and a public client.
SERVICE_ID = ClientIdentification(SERVICE.client_id, SERVICE.secret)
OTHER_ID = ClientIdentification(OTHER.client_id, OTHER.secret)
APP = ClientIdentification("app")


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

    def public(self, identification: ClientIdentification) -> OAuthClient:
        return OAuthClient(
            identification.client_id,
            identification.client_id,
            ClientKind.PUBLIC,
            None,
            SERVICE_GRANT,
            self.clock.now(),
            redirect_uris=("https://app.test/cb",),
        )


@pytest.fixture
async def identity() -> Identity:
    # The use cases as the OAuth2 tests wire them, with this module's three clients only.
    world = await oauth_world(seeded=False)
    setup = Identity(
        clock=world.clock,
        uow=world.uow,
        clients=world.clients,
        families=world.families,
        hasher=world.hasher,
        verifier=world.verifier,
        client_credentials=world.use_cases.client_credentials,
        token_pair=world.issue_pair,
        refresh=world.use_cases.refresh,
    )
    await setup.add_client(setup.confidential(SERVICE))
    await setup.add_client(setup.confidential(OTHER))
    await setup.add_client(setup.public(APP))
    return setup
