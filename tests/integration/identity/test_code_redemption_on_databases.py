"""Two simultaneous redemptions of one authorization code, through the served composition.

The use cases come from ``ledgerd``'s own container (the identity context's providers, the SQL
adapters); only the code repository is wrapped so that both redemptions read the unredeemed
code before either writes. On PostgreSQL the two transactions truly overlap; the compare-and-set
on the redeemed state lets one through.
"""

import asyncio
from collections.abc import AsyncIterator

import pytest
from dishka import AsyncContainer, Provider, Scope, provide
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.identity.adapters import tables
from ledgerd.identity.adapters.sql_repositories import SqlAuthorizationCodeRepository
from ledgerd.identity.application.authenticate_any_client import ClientIdentification
from ledgerd.identity.application.authenticate_user import UserCredentials
from ledgerd.identity.application.authorization_request import AuthorizationParameters
from ledgerd.identity.application.exchange_authorization_code import CodeExchangeRequest
from ledgerd.identity.application.manage_clients import CreateClient, NewClient
from ledgerd.identity.application.manage_users import CreateUser, NewUser
from ledgerd.identity.application.token_response import TokenResponse
from ledgerd.identity.domain.authorization_code_repository import AuthorizationCodeRepository
from ledgerd.identity.domain.authorization_codes import AuthorizationCode, s256_challenge
from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.scopes import Scope as GrantScope
from ledgerd.identity.entrypoints.oauth_app import OAuthUseCases
from ledgerd.kernel.errors import ConcurrencyConflictError, LedgerdError
from ledgerd.kernel.principal import ALL_LEDGERS
from ledgerd.main.container import build_container
from ledgerd.main.migrations import MIGRATIONS
from ledgerd.main.settings import Settings

REDIRECT_URI = "https://app.test/callback"
VERIFIER = "verifier-" + "x" * 40
GRANT = AccessGrant(frozenset({GrantScope.LEDGER_READ}), ALL_LEDGERS)
RENDEZVOUS_LIMIT_S = 10


class ReadRendezvous:
    """The SQL code repository, but the next two lookups wait for each other."""

    def __init__(self) -> None:
        self._inner = SqlAuthorizationCodeRepository()
        self._barrier = asyncio.Barrier(2)
        self._meetings = 0
        self.conflicts = 0

    def expect_race(self) -> None:
        self._meetings = 2

    async def add(self, code: AuthorizationCode) -> None:
        await self._inner.add(code)

    async def find_by_digest(self, code_digest: str) -> AuthorizationCode | None:
        code = await self._inner.find_by_digest(code_digest)
        if self._meetings > 0:
            self._meetings -= 1
            async with asyncio.timeout(RENDEZVOUS_LIMIT_S):
                await self._barrier.wait()
        return code

    async def update(self, code: AuthorizationCode, *, was_redeemed: bool) -> None:
        try:
            await self._inner.update(code, was_redeemed=was_redeemed)
        except ConcurrencyConflictError:
            self.conflicts += 1
            raise


class RacingCodes(Provider):
    scope = Scope.APP

    def __init__(self, codes: ReadRendezvous) -> None:
        super().__init__()
        self._codes = codes

    @provide
    def codes(self) -> AuthorizationCodeRepository:
        return self._codes


@pytest.fixture
async def racing(postgres_url: str) -> AsyncIterator[tuple[AsyncContainer, ReadRendezvous]]:
    codes = ReadRendezvous()
    container = build_container(Settings(database_url=postgres_url), RacingCodes(codes))
    try:
        await MIGRATIONS.upgrade(await container.get(AsyncEngine))
        yield container, codes
    finally:
        await container.close()


async def _stored_families(container: AsyncContainer) -> int:
    engine = await container.get(AsyncEngine)
    async with engine.connect() as connection:
        query = select(func.count()).select_from(tables.refresh_families)
        return int((await connection.execute(query)).scalar_one())


@pytest.mark.postgres
async def test_two_simultaneous_redemptions_of_one_code_issue_one_token_pair_on_postgres(
    racing: tuple[AsyncContainer, ReadRendezvous],
) -> None:
    container, codes = racing
    created = await (await container.get(CreateClient))(
        NewClient("app", GRANT, redirect_uris=(REDIRECT_URI,))
    )
    await (await container.get(CreateUser))(NewUser("alice", "alice-password", GRANT))
    oauth = await container.get(OAuthUseCases)
    request = await oauth.check_authorization(
        AuthorizationParameters(
            client_id=created.client.client_id,
            redirect_uri=REDIRECT_URI,
            response_type="code",
            code_challenge=s256_challenge(VERIFIER),
            code_challenge_method="S256",
            scope=None,
            state=None,
        )
    )
    alice = await oauth.authenticate_user(UserCredentials("alice", "alice-password"))
    code = await oauth.issue_code(request, alice)
    client = ClientIdentification(created.client.client_id, created.secret)
    exchange = CodeExchangeRequest(client, code, REDIRECT_URI, VERIFIER)
    codes.expect_race()

    outcomes = await asyncio.gather(
        oauth.exchange_code(exchange), oauth.exchange_code(exchange), return_exceptions=True
    )

    refused = [outcome for outcome in outcomes if isinstance(outcome, LedgerdError)]
    answered = [outcome for outcome in outcomes if isinstance(outcome, TokenResponse)]
    assert len(refused) + len(answered) == 2, outcomes
    # Both read the code unredeemed; the loser's compare-and-set matched nothing, and its retry
    # found the code redeemed: a second redemption, refused as a reuse.
    assert codes.conflicts == 1
    assert len(answered) <= 1
    assert any(
        error.code is IdentityErrorCode.INVALID_GRANT and error.details == {"reason": "reused"}
        for error in refused
    )
    # One redemption won, so one token pair was ever issued (the reuse revokes it, or refuses
    # it if the reuse arrived before the winner linked it: either way no second pair).
    assert await _stored_families(container) == 1
