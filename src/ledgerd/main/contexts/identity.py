"""The identity context, as the composition root composes it: one module, one description.

Its providers (the SQL repositories, the signing keys loaded or made at start and kept on the
stored set, the token issuer and verifier, hashing and random tokens, the use cases, the OAuth2
endpoints), those endpoints on the HTTP server, its background worker (the key reload), its
commands, its error codes and its migrations. The shared wiring takes them from ``IDENTITY``
in ``ledgerd.main.contexts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta

from dishka import AsyncContainer, Provider, Scope, alias, provide
from starlette.types import ASGIApp

from ledgerd.identity.adapters.signing_keys import KeyRingReloader, load_or_create_key_set
from ledgerd.identity.adapters.sql_repositories import (
    SqlAuthorizationCodeRepository,
    SqlClientRepository,
    SqlRefreshFamilyRepository,
    SqlSigningKeyStore,
    SqlUserRepository,
)
from ledgerd.identity.application.authenticate_any_client import IdentifyClient
from ledgerd.identity.application.authenticate_client import AuthenticateClient
from ledgerd.identity.application.authenticate_user import AuthenticateUser
from ledgerd.identity.application.authorization_request import CheckAuthorizationRequest
from ledgerd.identity.application.client_credentials import IssueClientCredentialsToken
from ledgerd.identity.application.exchange_authorization_code import ExchangeAuthorizationCode
from ledgerd.identity.application.issue_authorization_code import IssueAuthorizationCode
from ledgerd.identity.application.issue_token_pair import IssueTokenPair
from ledgerd.identity.application.manage_clients import CreateClient, ListClients, RevokeClient
from ledgerd.identity.application.manage_users import CreateUser
from ledgerd.identity.application.refresh_tokens import RefreshTokens
from ledgerd.identity.application.revoke_token import RevokeToken
from ledgerd.identity.domain.authorization_code_repository import AuthorizationCodeRepository
from ledgerd.identity.domain.ledger_grants import ClientLedgerGrants
from ledgerd.identity.domain.refresh_families import RefreshPolicy
from ledgerd.identity.domain.repositories import (
    ClientDirectory,
    ClientRepository,
    RefreshFamilyRepository,
    UserRepository,
)
from ledgerd.identity.domain.signing_key_store import SigningKeyStore
from ledgerd.identity.entrypoints.errors import IDENTITY_ERRORS
from ledgerd.identity.entrypoints.failure_limits import DEFAULT_FAILURE_LIMIT, FailureLimiter
from ledgerd.identity.entrypoints.key_reload import run_key_reload_loop
from ledgerd.identity.entrypoints.oauth_app import OAuthHttpApp, OAuthHttpSettings, OAuthUseCases
from ledgerd.kernel.clock import Clock
from ledgerd.kernel.ids import IdGenerator
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.main.bounded_context import BackgroundWorker, BoundedContext
from ledgerd.main.contexts.identity_commands import add_identity_commands
from ledgerd.main.settings import Settings
from ledgerd.platform.auth.access_tokens import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    TokenAudience,
)
from ledgerd.platform.auth.keys import KeyRing
from ledgerd.platform.auth.opaque_tokens import OpaqueTokens
from ledgerd.platform.auth.secret_hashing import SecretHasher

log = logging.getLogger(__name__)

# The size of a CSRF key made when none is set: HMAC-SHA256's block of randomness.
_RANDOM_CSRF_KEY_BYTES = 32


class IdentitySqlProvider(Provider):
    """The identity context's ports on the database."""

    scope = Scope.APP

    sql_clients = provide(SqlClientRepository)
    clients = alias(source=SqlClientRepository, provides=ClientRepository)
    directory = alias(source=SqlClientRepository, provides=ClientDirectory)
    ledger_grants = alias(source=SqlClientRepository, provides=ClientLedgerGrants)
    users = provide(SqlUserRepository, provides=UserRepository)
    families = provide(SqlRefreshFamilyRepository, provides=RefreshFamilyRepository)
    codes = provide(SqlAuthorizationCodeRepository, provides=AuthorizationCodeRepository)
    key_store = provide(SqlSigningKeyStore, provides=SigningKeyStore)


class IdentityTokensProvider(Provider):
    """Signing keys, access tokens, hashing and random tokens, on the settings."""

    scope = Scope.APP

    @provide
    async def key_ring_reloader(
        self, uow: UnitOfWork, store: SigningKeyStore, clock: Clock
    ) -> KeyRingReloader:
        """The stored key set, or a new one stored first (a new database), in the ring."""
        return KeyRingReloader(uow, store, await load_or_create_key_set(uow, store, clock.now()))

    @provide
    def key_ring(self, reloader: KeyRingReloader) -> KeyRing:
        return reloader.ring

    @provide
    def token_names(self, settings: Settings) -> TokenAudience:
        return TokenAudience(issuer=settings.issuer, audience=settings.token_audience)

    @provide
    def access_token_issuer(
        self, keys: KeyRing, names: TokenAudience, settings: Settings, clock: Clock
    ) -> AccessTokenIssuer:
        lifetime = timedelta(seconds=settings.access_token_lifetime_seconds)
        return AccessTokenIssuer(keys, names, lifetime, clock)

    @provide
    def access_token_verifier(
        self, keys: KeyRing, names: TokenAudience, clock: Clock
    ) -> AccessTokenVerifier:
        return AccessTokenVerifier(keys, names, clock)

    @provide
    def hasher(self) -> SecretHasher:
        """argon2id at the parameters docs/security.md states."""
        return SecretHasher()

    opaque_tokens = provide(OpaqueTokens)

    @provide
    def refresh_policy(self, settings: Settings) -> RefreshPolicy:
        return RefreshPolicy(
            absolute_lifetime=timedelta(seconds=settings.refresh_absolute_lifetime_seconds),
            idle_timeout=timedelta(seconds=settings.refresh_idle_timeout_seconds),
        )


class IdentityApplicationProvider(Provider):
    """The identity use cases on their ports."""

    scope = Scope.APP

    @provide
    def authenticate_client(
        self, uow: UnitOfWork, clients: ClientRepository, hasher: SecretHasher
    ) -> AuthenticateClient:
        return AuthenticateClient(uow, clients, hasher)

    @provide
    def identify_client(
        self, authenticate: AuthenticateClient, uow: UnitOfWork, clients: ClientRepository
    ) -> IdentifyClient:
        return IdentifyClient(authenticate, uow, clients)

    @provide
    def authenticate_user(
        self, uow: UnitOfWork, users: UserRepository, hasher: SecretHasher
    ) -> AuthenticateUser:
        return AuthenticateUser(uow, users, hasher)

    @provide
    def client_credentials(
        self, authenticate: AuthenticateClient, issuer: AccessTokenIssuer
    ) -> IssueClientCredentialsToken:
        return IssueClientCredentialsToken(authenticate, issuer)

    @provide
    def issue_token_pair(  # noqa: PLR0913, PLR0917 - dishka: one parameter per dependency; the ports a new family touches, each named
        self,
        uow: UnitOfWork,
        families: RefreshFamilyRepository,
        issuer: AccessTokenIssuer,
        opaque: OpaqueTokens,
        policy: RefreshPolicy,
        clock: Clock,
        new_id: IdGenerator,
    ) -> IssueTokenPair:
        return IssueTokenPair(
            uow=uow,
            families=families,
            access_tokens=issuer,
            refresh_tokens=opaque,
            policy=policy,
            clock=clock,
            new_id=new_id,
        )

    @provide
    def exchange_code(  # noqa: PLR0913, PLR0917 - dishka: one parameter per dependency; the ports a redemption touches, each named
        self,
        identify: IdentifyClient,
        uow: UnitOfWork,
        codes: AuthorizationCodeRepository,
        families: RefreshFamilyRepository,
        opaque: OpaqueTokens,
        issue_pair: IssueTokenPair,
        clock: Clock,
    ) -> ExchangeAuthorizationCode:
        return ExchangeAuthorizationCode(
            identify=identify,
            uow=uow,
            codes=codes,
            families=families,
            digests=opaque,
            issue_pair=issue_pair,
            clock=clock,
        )

    @provide
    def refresh(  # noqa: PLR0913, PLR0917 - dishka: one parameter per dependency; the ports a refresh touches, each named
        self,
        authenticate: AuthenticateClient,
        uow: UnitOfWork,
        families: RefreshFamilyRepository,
        issuer: AccessTokenIssuer,
        opaque: OpaqueTokens,
        clock: Clock,
    ) -> RefreshTokens:
        return RefreshTokens(
            authenticate=authenticate,
            uow=uow,
            families=families,
            access_tokens=issuer,
            refresh_tokens=opaque,
            clock=clock,
        )

    @provide
    def revoke(
        self,
        identify: IdentifyClient,
        uow: UnitOfWork,
        families: RefreshFamilyRepository,
        opaque: OpaqueTokens,
        clock: Clock,
    ) -> RevokeToken:
        return RevokeToken(
            identify=identify, uow=uow, families=families, digests=opaque, clock=clock
        )

    @provide
    def check_authorization(
        self, uow: UnitOfWork, clients: ClientRepository
    ) -> CheckAuthorizationRequest:
        return CheckAuthorizationRequest(uow, clients)

    @provide
    def issue_code(
        self,
        uow: UnitOfWork,
        codes: AuthorizationCodeRepository,
        opaque: OpaqueTokens,
        clock: Clock,
    ) -> IssueAuthorizationCode:
        return IssueAuthorizationCode(uow, codes, opaque, clock)

    @provide
    def create_client(  # noqa: PLR0913, PLR0917 - dishka: one parameter per dependency; the ports a new client touches, each named
        self,
        uow: UnitOfWork,
        clients: ClientRepository,
        opaque: OpaqueTokens,
        hasher: SecretHasher,
        clock: Clock,
        new_id: IdGenerator,
    ) -> CreateClient:
        return CreateClient(
            uow=uow, clients=clients, secrets=opaque, hashing=hasher, clock=clock, new_id=new_id
        )

    @provide
    def list_clients(self, uow: UnitOfWork, directory: ClientDirectory) -> ListClients:
        return ListClients(uow, directory)

    @provide
    def revoke_client(
        self, uow: UnitOfWork, directory: ClientDirectory, clock: Clock
    ) -> RevokeClient:
        return RevokeClient(uow, directory, clock)

    @provide
    def create_user(
        self,
        uow: UnitOfWork,
        users: UserRepository,
        hasher: SecretHasher,
        clock: Clock,
        new_id: IdGenerator,
    ) -> CreateUser:
        return CreateUser(uow=uow, users=users, hashing=hasher, clock=clock, new_id=new_id)

    oauth_use_cases = provide(OAuthUseCases)


class IdentityServingProvider(Provider):
    """The OAuth2 endpoints, on the settings."""

    scope = Scope.APP

    @provide
    def oauth_app(
        self, use_cases: OAuthUseCases, keys: KeyRing, clock: Clock, settings: Settings
    ) -> OAuthHttpApp:
        return OAuthHttpApp(
            use_cases=use_cases,
            settings=OAuthHttpSettings(issuer=settings.issuer, csrf_key=csrf_key(settings)),
            keys=keys,
            clock=clock,
            client_failures=FailureLimiter(DEFAULT_FAILURE_LIMIT),
            user_failures=FailureLimiter(DEFAULT_FAILURE_LIMIT),
        )


def csrf_key(settings: Settings) -> bytes:
    """``LEDGERD_CSRF_KEY``, or a random key of this process's own."""
    if settings.csrf_key is not None:
        return settings.csrf_key.get_secret_value().encode()
    # A note, not a warning: one process (the default, embedded) is what it fits.
    log.info(
        "LEDGERD_CSRF_KEY is not set: the login form's CSRF key is random to this process, so "
        "a login form works only if it is posted back to the process that showed it; set the "
        "same key on every server behind one address"
    )
    return secrets.token_bytes(_RANDOM_CSRF_KEY_BYTES)


async def oauth_endpoints(container: AsyncContainer) -> Mapping[str, ASGIApp]:
    """The OAuth2 and well-known paths, each to the one OAuth2 app."""
    app = await container.get(OAuthHttpApp)
    return dict.fromkeys(sorted(app.paths), app)


@contextlib.asynccontextmanager
async def key_reload(
    container: AsyncContainer, settings: Settings, _command: str
) -> AsyncIterator[asyncio.Future[None]]:
    """Reload the signing keys every ``LEDGERD_KEY_RELOAD_INTERVAL_SECONDS`` if rotated."""
    reloader = await container.get(KeyRingReloader)
    stop = asyncio.Event()
    reloading = asyncio.create_task(
        run_key_reload_loop(reloader, stop, interval_s=settings.key_reload_interval_seconds),
        name="key-reload",
    )
    try:
        yield reloading
    finally:
        stop.set()
        await asyncio.gather(reloading, return_exceptions=True)


def _providers() -> Sequence[Provider]:
    return (
        IdentitySqlProvider(),
        IdentityTokensProvider(),
        IdentityApplicationProvider(),
        IdentityServingProvider(),
    )


IDENTITY = BoundedContext(
    name="identity",
    providers=_providers,
    # `ledgerd worker` issues and verifies no tokens: only `serve` keeps its keys fresh.
    workers=(
        BackgroundWorker(
            name="signing key reload", run=key_reload, in_worker=lambda _settings: False
        ),
    ),
    commands=add_identity_commands,
    error_codes=IDENTITY_ERRORS,
    migrations=("ledgerd.identity.adapters:migrations",),
    http_endpoints=oauth_endpoints,
)
