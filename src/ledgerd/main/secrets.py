"""The ``secret://`` references in settings: resolved at start-up, refreshed while running.

Which settings may be references is ``SECRET_SETTINGS``. ``resolve_settings`` reads each
before anything is built and gives the settings with the values in place, so the rest of
the program sees plain settings; the cache stays with the container, its refresh worker
keeps the values current, and the database engine asks it for the URL of every new
connection (docs/security.md, "Secrets", says what else needs a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dishka import AsyncContainer
from pydantic import SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.main.bounded_context import BackgroundWorker, looping
from ledgerd.main.settings import (
    Settings,
    check_csrf_key,
    check_wrapping_keys,
    normalise_database_url,
)
from ledgerd.main.settings_errors import ENV_PREFIX
from ledgerd.platform.secrets.cache import SecretCache
from ledgerd.platform.secrets.local import LocalSecretStore
from ledgerd.platform.secrets.ports import SecretError, SecretStore, SecretUnreachableError
from ledgerd.platform.secrets.references import (
    SecretReference,
    StoreName,
    is_reference,
    parse_reference,
)
from ledgerd.platform.secrets.secret import Secret

if TYPE_CHECKING:
    # Imported where a lease is taken: it brings httpx, whose import (~0.2 s, its command line's
    # rich and pygments included) every ledgerd command would pay for otherwise.
    from ledgerd.platform.secrets.leases import DatabaseLease

# The settings whose value may be a `secret://` reference (each holds a password or a key).
SECRET_SETTINGS = (
    "database_url",
    "rabbitmq_url",
    "redis_url",
    "nats_url",
    "csrf_key",
    "signing_keys_secret",
    "signing_keys_secret_previous",
)


class SecretSettingError(Exception):
    """A reference in a setting that could not be resolved: one line, naming the variable."""

    def __init__(self, setting: str, reason: str, *, unreachable: bool) -> None:
        super().__init__(f"{ENV_PREFIX}{setting.upper()}: {reason}")
        self.unreachable = unreachable


@dataclass(slots=True)
class ResolvedSecrets:
    """The cache of the values in use and which setting each reference came from."""

    cache: SecretCache = field(default_factory=lambda: SecretCache({}, ttl_s=300.0))
    references: Mapping[str, SecretReference] = field(default_factory=dict)
    # LEDGERD_DATABASE_CREDENTIALS: the leased role that replaces the URL's user and password.
    database_lease: DatabaseLease | None = None

    def database_url(self, settings: Settings) -> Callable[[], str] | None:
        """What the engine asks for each new connection's URL, if it comes from a store."""
        reference = self.references.get("database_url")
        cache, lease = self.cache, self.database_lease
        if reference is None and lease is None:
            return None

        def current() -> str:
            url = (
                settings.database_url
                if reference is None
                else normalise_database_url(cache.current(reference).reveal())
            )
            return url if lease is None else with_credentials(url, lease)

        return current

    def database_credentials_refused(self) -> Callable[[str | None], Awaitable[None]] | None:
        """What the engine awaits when the database refuses a leased role, before one retry."""
        return None if self.database_lease is None else self.database_lease.replace_refused

    async def aclose(self) -> None:
        if self.database_lease is not None:
            await self.database_lease.revoke()
            await self.database_lease.aclose()
        await self.cache.aclose()


def with_credentials(url: str, lease: DatabaseLease) -> str:
    """``url`` with the leased role's user and password in place of its own."""
    credentials = lease.credentials
    return (
        make_url(url)
        .set(username=credentials.username, password=credentials.password.reveal())
        .render_as_string(hide_password=False)
    )


def secret_stores(settings: Settings) -> dict[StoreName, SecretStore]:
    """The stores these settings configure: env/file always, Vault and AWS when set up."""
    # At run time only: aiobotocore and httpx are slow to import, and most commands need neither.
    from ledgerd.platform.secrets.aws import AwsSecretsManagerStore  # noqa: PLC0415
    from ledgerd.platform.secrets.vault import VaultKvStore  # noqa: PLC0415

    local = LocalSecretStore()
    stores: dict[StoreName, SecretStore] = {"env": local, "file": local}
    if (token := _vault_token(settings)) is not None and settings.vault_addr is not None:
        stores["vault"] = VaultKvStore(settings.vault_addr, token)
    stores["aws"] = AwsSecretsManagerStore(
        region=settings.aws_region, endpoint_url=settings.aws_endpoint_url
    )
    return stores


async def resolve_settings(settings: Settings) -> tuple[Settings, ResolvedSecrets]:
    """``settings`` with every reference's value in place, and the cache that holds them.

    ``SecretSettingError`` names the first setting that could not be resolved (and its
    reference, never a value).
    """
    references = {
        name: parse_reference(text)
        for name in SECRET_SETTINGS
        if (text := _text(getattr(settings, name))) is not None and is_reference(text)
    }
    cache = SecretCache(secret_stores(settings), ttl_s=settings.secret_ttl_seconds)
    resolved = ResolvedSecrets(cache, references)
    update: dict[str, Any] = {}
    try:
        for name, reference in references.items():
            update[name] = _checked(name, reference, await _resolved(cache, name, reference))
        if settings.database_credentials is not None:
            url = update.get("database_url", settings.database_url)
            resolved.database_lease = await _leased(settings, url)
            update["database_url"] = with_credentials(url, resolved.database_lease)
    except BaseException:
        await resolved.aclose()
        raise
    return settings.model_copy(update=update), resolved


async def _leased(settings: Settings, database_url: str) -> DatabaseLease:
    """The first credentials of LEDGERD_DATABASE_CREDENTIALS, leased now."""
    name = "database_credentials"
    assert settings.database_credentials is not None  # noqa: S101 - checked by the caller
    reference = parse_reference(settings.database_credentials)
    if make_url(database_url).get_backend_name() != "postgresql":
        reason = f"{reference}: leased credentials are for a PostgreSQL LEDGERD_DATABASE_URL"
        raise SecretSettingError(name, reason, unreachable=False)
    token = _vault_token(settings)
    if settings.vault_addr is None or token is None:
        reason = f"{reference}: set LEDGERD_VAULT_ADDR and LEDGERD_VAULT_TOKEN to read it"
        raise SecretSettingError(name, reason, unreachable=False)
    from ledgerd.platform.secrets.leases import DatabaseLease  # noqa: PLC0415 - see the top

    lease = DatabaseLease(settings.vault_addr, token, reference)
    try:
        await lease.obtain()
    except SecretError as error:
        await lease.aclose()
        unreachable = isinstance(error, SecretUnreachableError)
        raise SecretSettingError(name, str(error), unreachable=unreachable) from None
    return lease


def _vault_token(settings: Settings) -> Secret | None:
    if settings.vault_token is None:
        return None
    return Secret(settings.vault_token.get_secret_value())


async def _resolved(cache: SecretCache, name: str, reference: SecretReference) -> Secret:
    if reference.store == "vault-db":
        reason = f"{reference}: leased credentials are given as LEDGERD_DATABASE_CREDENTIALS"
        raise SecretSettingError(name, reason, unreachable=False)
    if reference.store == "vault" and "vault" not in cache.stores:
        reason = f"{reference}: set LEDGERD_VAULT_ADDR and LEDGERD_VAULT_TOKEN to read it"
        raise SecretSettingError(name, reason, unreachable=False)
    try:
        return await cache.resolve(reference)
    except SecretError as error:
        unreachable = isinstance(error, SecretUnreachableError)
        raise SecretSettingError(name, str(error), unreachable=unreachable) from None


def _checked(name: str, reference: SecretReference, value: Secret) -> object:
    """The value as the setting holds it, checked as the setting's own value would be."""
    try:
        if name == "csrf_key":
            return check_csrf_key(SecretStr(value.reveal()))
        if name in {"signing_keys_secret", "signing_keys_secret_previous"}:
            several = name == "signing_keys_secret_previous"
            return check_wrapping_keys(SecretStr(value.reveal()), several=several)
        if name == "database_url":
            return normalise_database_url(value.reveal())
    except ValueError as error:
        raise SecretSettingError(name, f"{reference}: {error}", unreachable=False) from None
    return value.reveal()


def _text(value: object) -> str | None:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value if isinstance(value, str) else None


@contextlib.asynccontextmanager
async def refreshing(
    container: AsyncContainer, _settings: Settings, _command: str
) -> AsyncIterator[asyncio.Future[None]]:
    """Re-read the references every ``LEDGERD_SECRET_TTL_SECONDS`` (idle without any)."""
    secrets = await container.get(ResolvedSecrets)
    async with looping("secret-refresh", secrets.cache.run) as running:
        yield running


SECRET_REFRESH = BackgroundWorker(name="secret refresh", run=refreshing)


@contextlib.asynccontextmanager
async def renewing(
    container: AsyncContainer, _settings: Settings, _command: str
) -> AsyncIterator[asyncio.Future[None]]:
    """Keep LEDGERD_DATABASE_CREDENTIALS leased (idle without them).

    After a switch to new credentials the pool is disposed of: its idle connections (the old
    role's) close at once, those in use finish their work and close when given back, and every
    connection opened from then on uses the new role.
    """
    secrets = await container.get(ResolvedSecrets)
    lease = secrets.database_lease
    if lease is None:
        async with looping("database-lease", _idle) as running:
            yield running
        return
    engine = await container.get(AsyncEngine)

    async def run(stop: asyncio.Event) -> None:
        await lease.run(stop, engine.dispose)

    async with looping("database-lease", run) as running:
        yield running


async def _idle(stop: asyncio.Event) -> None:
    await stop.wait()


DATABASE_LEASE = BackgroundWorker(
    name="database lease",
    run=renewing,
    in_serve=lambda settings: settings.database_credentials is not None,
    in_worker=lambda settings: settings.database_credentials is not None,
)
