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

from dishka import AsyncContainer, Provider, Scope, alias, provide, provide_all
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
from ledgerd.identity.application.demo_client import ProvideDemoClient
from ledgerd.identity.application.exchange_authorization_code import ExchangeAuthorizationCode
from ledgerd.identity.application.issue_authorization_code import IssueAuthorizationCode
from ledgerd.identity.application.issue_token_pair import IssueTokenPair
from ledgerd.identity.application.manage_clients import (
    CreateClient,
    ListClients,
    ResetClientSecret,
    RevokeClient,
)
from ledgerd.identity.application.manage_users import CreateUser
from ledgerd.identity.application.ports import (
    AccessTokenMinter,
    RefreshTokenMaker,
    SecretChecker,
    SecretHashing,
)
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
from ledgerd.kernel.unit_of_work import UnitOfWork
from ledgerd.main.bounded_context import BackgroundWorker, BoundedContext, looping
from ledgerd.main.contexts.identity_commands import add_identity_commands
from ledgerd.main.settings import Settings
from ledgerd.main.wrapping import database_wrapping_keys
from ledgerd.platform.auth.access_tokens import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    TokenAudience,
)
from ledgerd.platform.auth.keys import KeyRing
from ledgerd.platform.auth.opaque_tokens import OpaqueTokens
from ledgerd.platform.auth.sealed_keys import KeySetSealing
from ledgerd.platform.auth.secret_hashing import SecretHasher

log = logging.getLogger(__name__)

# The one warning of a default `serve`: deliberate, since the embedded default is also how a
# careless deployment would run.
KEYS_UNSEALED = (
    "LEDGERD_SIGNING_KEYS_SECRET is not set: the token signing keys and the webhooks' signing "
    "secrets are stored unencrypted, so whoever can read the database can mint access tokens "
    "and sign webhook deliveries"
)
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
    def key_set_sealing(self, settings: Settings) -> KeySetSealing:
        return key_set_sealing(settings)

    @provide
    async def key_ring_reloader(
        self, uow: UnitOfWork, store: SigningKeyStore, clock: Clock, sealing: KeySetSealing
    ) -> KeyRingReloader:
        """The stored key set, or a new one stored first (a new database), in the ring."""
        if not sealing.seals:
            # Once per process: the ring is made once, when the identity context first serves.
            log.warning(KEYS_UNSEALED)
        loaded = await load_or_create_key_set(uow, store, clock.now(), sealing)
        return KeyRingReloader(uow, store, loaded, sealing)

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
    """The identity use cases on their ports.

    The ports the use cases declare (``identity/application/ports.py``) are the platform's
    auth classes the tokens provider makes, under the port's name.
    """

    scope = Scope.APP

    access_token_minter = alias(source=AccessTokenIssuer, provides=AccessTokenMinter)
    refresh_token_maker = alias(source=OpaqueTokens, provides=RefreshTokenMaker)
    secret_checker = alias(source=SecretHasher, provides=SecretChecker)
    secret_hashing = alias(source=SecretHasher, provides=SecretHashing)

    use_cases = provide_all(
        AuthenticateClient,
        IdentifyClient,
        AuthenticateUser,
        IssueClientCredentialsToken,
        IssueTokenPair,
        RefreshTokens,
        RevokeToken,
        CheckAuthorizationRequest,
        IssueAuthorizationCode,
        CreateClient,
        ListClients,
        RevokeClient,
        ResetClientSecret,
        ProvideDemoClient,
        CreateUser,
        OAuthUseCases,
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
        # By hand: the use case takes the token pair's issuing as a callable, which is no type
        # the container could look up.
        return ExchangeAuthorizationCode(
            identify=identify,
            uow=uow,
            codes=codes,
            families=families,
            digests=opaque,
            issue_pair=issue_pair,
            clock=clock,
        )


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


def key_set_sealing(settings: Settings) -> KeySetSealing:
    """``LEDGERD_SIGNING_KEYS_SECRET`` and its ``_PREVIOUS`` keys, as the sealing of the set."""
    keys = database_wrapping_keys(settings)
    return KeySetSealing(current=keys.current, previous=keys.previous)


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
    interval_s = settings.key_reload_interval_seconds
    async with looping(
        "key-reload", lambda stop: run_key_reload_loop(reloader, stop, interval_s=interval_s)
    ) as reloading:
        yield reloading


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
