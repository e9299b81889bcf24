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
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dishka import AsyncContainer
from pydantic import SecretStr

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

    def database_url(self) -> Callable[[], str] | None:
        """What the engine asks for each new connection's URL, if it comes from a store."""
        reference = self.references.get("database_url")
        if reference is None:
            return None
        cache = self.cache
        return lambda: normalise_database_url(cache.current(reference).reveal())


def secret_stores(settings: Settings) -> dict[StoreName, SecretStore]:
    """The stores these settings configure: env/file always, Vault and AWS when set up."""
    # At run time only: aiobotocore and httpx are slow to import, and most commands need neither.
    from ledgerd.platform.secrets.aws import AwsSecretsManagerStore  # noqa: PLC0415
    from ledgerd.platform.secrets.vault import VaultKvStore  # noqa: PLC0415

    local = LocalSecretStore()
    stores: dict[StoreName, SecretStore] = {"env": local, "file": local}
    if settings.vault_addr is not None and settings.vault_token is not None:
        token = Secret(settings.vault_token.get_secret_value())
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
    except BaseException:
        await cache.aclose()
        raise
    return settings.model_copy(update=update), resolved


async def _resolved(cache: SecretCache, name: str, reference: SecretReference) -> Secret:
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
