"""The identity context's use cases wired on in-memory fakes, for the OAuth2 tests.

Real token signing, hashing (argon2 at its cheapest) and randomness; fake storage and clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from argon2.profiles import CHEAPEST

from ledgerd.identity.application.authenticate_any_client import (
    ClientIdentification,
    IdentifyClient,
)
from ledgerd.identity.application.authenticate_client import AuthenticateClient
from ledgerd.identity.application.authenticate_user import AuthenticateUser, UserCredentials
from ledgerd.identity.application.authorization_request import (
    AuthorizationParameters,
    CheckAuthorizationRequest,
)
from ledgerd.identity.application.client_credentials import IssueClientCredentialsToken
from ledgerd.identity.application.exchange_authorization_code import ExchangeAuthorizationCode
from ledgerd.identity.application.issue_authorization_code import IssueAuthorizationCode
from ledgerd.identity.application.issue_token_pair import IssueTokenPair
from ledgerd.identity.application.refresh_tokens import RefreshTokens
from ledgerd.identity.application.revoke_token import RevokeToken
from ledgerd.identity.domain.authorization_codes import s256_challenge
from ledgerd.identity.domain.clients import ClientKind, OAuthClient
from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.refresh_families import RefreshPolicy
from ledgerd.identity.domain.scopes import Scope
from ledgerd.identity.domain.users import User
from ledgerd.identity.entrypoints.oauth_app import OAuthUseCases
from ledgerd.kernel.principal import ALL_LEDGERS
from ledgerd.platform.auth.access_tokens import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    TokenAudience,
)
from ledgerd.platform.auth.keys import KeyRing, SigningKeySet
from ledgerd.platform.auth.opaque_tokens import OpaqueTokens
from ledgerd.platform.auth.secret_hashing import SecretHasher
from tests.fakes.clock import ManualClock
from tests.fakes.identity_oauth_store import (
    FakeAuthorizationCodeRepository,
    FakeUserRepository,
    OAuthTables,
)
from tests.fakes.identity_store import (
    FakeClientRepository,
    FakeIdentityUnitOfWork,
    FakeRefreshFamilyRepository,
)
from tests.fakes.ids import SequentialIds

ISSUER = "https://ledgerd.test"
NAMES = TokenAudience(issuer=ISSUER, audience="ledgerd")
POLICY = RefreshPolicy(absolute_lifetime=timedelta(days=30), idle_timeout=timedelta(days=7))

SVC_SECRET = "svc-secret-0123456789"
SVC = ClientIdentification("svc", SVC_SECRET)
SPA = ClientIdentification("spa")
SVC_REDIRECT = "https://app.test/callback"
SPA_REDIRECT = "https://spa.test/cb?tenant=1"
ALICE_PASSWORD = "alice-password-42"
CLIENT_GRANT = AccessGrant(
    frozenset({Scope.LEDGER_READ, Scope.TRANSFERS_WRITE}), frozenset({"main", "side"})
)
USER_GRANT = AccessGrant(frozenset({Scope.LEDGER_READ, Scope.LEDGER_WRITE}), ALL_LEDGERS)
# What alice's token through either client may do: the two grants' intersection.
ALICE_THROUGH_CLIENT = AccessGrant(frozenset({Scope.LEDGER_READ}), frozenset({"main", "side"}))
VERIFIER = "v" * 20 + "-._~" + "0123456789abcdefghijklmnop"


@dataclass
class OAuthWorld:
    clock: ManualClock
    uow: FakeIdentityUnitOfWork
    tables: OAuthTables
    clients: FakeClientRepository
    families: FakeRefreshFamilyRepository
    codes: FakeAuthorizationCodeRepository
    identify: IdentifyClient
    issue_pair: IssueTokenPair
    opaque: OpaqueTokens
    hasher: SecretHasher
    access_tokens: AccessTokenIssuer
    keys: KeyRing
    verifier: AccessTokenVerifier
    use_cases: OAuthUseCases

    def parameters(
        self,
        client_id: str = "svc",
        redirect_uri: str = SVC_REDIRECT,
        *,
        verifier: str = VERIFIER,
        scope: str | None = None,
        state: str | None = "st-1",
    ) -> AuthorizationParameters:
        return AuthorizationParameters(
            client_id=client_id,
            redirect_uri=redirect_uri,
            response_type="code",
            code_challenge=s256_challenge(verifier),
            code_challenge_method="S256",
            scope=scope,
            state=state,
        )

    async def code_for(self, parameters: AuthorizationParameters | None = None) -> str:
        """A code as the authorization endpoint issues it after alice signs in."""
        checked = await self.use_cases.check_authorization(parameters or self.parameters())
        alice = await self.use_cases.authenticate_user(UserCredentials("alice", ALICE_PASSWORD))
        return await self.use_cases.issue_code(checked, alice)

    async def family_revoked(self, family_id: str) -> bool:
        async with self.uow.begin(read_only=True):
            return await self.families.is_revoked(family_id)


async def oauth_world(*, seeded: bool = True) -> OAuthWorld:
    """The wired use cases; ``seeded``: with the clients svc and spa and the users alice and bob."""
    clock = ManualClock()
    tables = OAuthTables()
    uow = FakeIdentityUnitOfWork(tables)
    clients, families = FakeClientRepository(uow), FakeRefreshFamilyRepository(uow)
    users, codes = FakeUserRepository(uow), FakeAuthorizationCodeRepository(uow)
    hasher = SecretHasher(CHEAPEST)
    keys = KeyRing(SigningKeySet.generate(clock.now()))
    issuer = AccessTokenIssuer(keys, NAMES, timedelta(minutes=15), clock)
    opaque = OpaqueTokens()
    authenticate = AuthenticateClient(uow, clients, hasher)
    identify = IdentifyClient(authenticate, uow, clients)
    issue_pair = IssueTokenPair(
        uow=uow,
        families=families,
        access_tokens=issuer,
        refresh_tokens=opaque,
        policy=POLICY,
        clock=clock,
        new_id=SequentialIds("fam"),
    )
    use_cases = OAuthUseCases(
        client_credentials=IssueClientCredentialsToken(authenticate, issuer),
        exchange_code=ExchangeAuthorizationCode(
            identify=identify,
            uow=uow,
            codes=codes,
            families=families,
            digests=opaque,
            issue_pair=issue_pair,
            clock=clock,
        ),
        refresh=RefreshTokens(
            identify=identify,
            uow=uow,
            families=families,
            access_tokens=issuer,
            refresh_tokens=opaque,
            clock=clock,
        ),
        revoke=RevokeToken(
            identify=identify, uow=uow, families=families, digests=opaque, clock=clock
        ),
        check_authorization=CheckAuthorizationRequest(uow, clients),
        authenticate_user=AuthenticateUser(uow, users, hasher),
        issue_code=IssueAuthorizationCode(uow, codes, opaque, clock),
    )
    world = OAuthWorld(
        clock=clock,
        uow=uow,
        tables=tables,
        clients=clients,
        families=families,
        codes=codes,
        identify=identify,
        issue_pair=issue_pair,
        opaque=opaque,
        hasher=hasher,
        access_tokens=issuer,
        keys=keys,
        verifier=AccessTokenVerifier(keys, NAMES, clock),
        use_cases=use_cases,
    )
    if seeded:
        await _seed(world, users)
    return world


async def _seed(world: OAuthWorld, users: FakeUserRepository) -> None:
    """The clients svc (confidential) and spa (public), the users alice and bob (disabled)."""
    now = world.clock.now()
    async with world.uow.begin() as tx:
        await world.clients.add(
            OAuthClient(
                "svc",
                "Service <b>One</b>",
                ClientKind.CONFIDENTIAL,
                world.hasher.hash(SVC_SECRET),
                CLIENT_GRANT,
                now,
                redirect_uris=(SVC_REDIRECT,),
            )
        )
        await world.clients.add(
            OAuthClient(
                "spa", "Single page", ClientKind.PUBLIC, None, CLIENT_GRANT, now, (SPA_REDIRECT,)
            )
        )
        await users.add(
            User("u-alice", "alice", world.hasher.hash(ALICE_PASSWORD), USER_GRANT, now)
        )
        await users.add(
            User("u-bob", "bob", world.hasher.hash("bob-pw"), USER_GRANT, now, disabled_at=now)
        )
        await tx.commit()
