"""How a ``ledgerd`` command that works on the database runs: settings, checks, container, exit.

Shared by the program's commands (``main/cli.py``) and every context's (``commands=`` in its
description), so each says only what it does and all exit alike: the codes below, one line on
stderr naming what went wrong.

The database checks and the container are imported when a command runs, not with this module:
they bring Alembic, the servers' wiring and more, which ``ledgerd --help`` does not need.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import typer
from dishka import AsyncContainer
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.kernel.errors import LedgerdError
from ledgerd.main.logs import configure_logging
from ledgerd.main.secrets import ResolvedSecrets, SecretSettingError, resolve_settings
from ledgerd.main.settings import Settings
from ledgerd.main.settings_errors import load_settings
from ledgerd.platform.db.abandoned_probes import quiet_abandoned_probes
from ledgerd.platform.db.engine import is_sqlite
from ledgerd.platform.listening import CannotListenError
from ledgerd.platform.tls.certificate_files import CertificateFileError

EXIT_PROBLEMS = 1
# A configuration mistake, a usage error, or something missing (a ledger, the schema).
EXIT_ERROR = 2
# The database could not be reached: worth retrying, unlike a mistake in the settings.
EXIT_UNREACHABLE = 3

Work = Callable[[AsyncContainer, Settings], Awaitable[int]]


LEASED_OWNER = (
    "error: LEDGERD_DATABASE_CREDENTIALS: this command changes the schema, which must belong "
    "to its owner, not to a leased role (the lease's end would drop the tables with it): unset "
    "it and give the owner's credentials in LEDGERD_DATABASE_URL"
)


def run(work: Work, *, creates_database: bool = False, owns_schema: bool = False) -> None:
    """Run ``work`` against the configured database once it is known to be usable.

    Only the commands that may make a database (``creates_database``: migrate, and serve,
    demo and worker, which migrate an embedded one) may start from none; the others need an
    existing database at the schema this package ships. A command that changes the schema
    (``owns_schema``) is refused leased database credentials.
    """
    settings = load_settings()
    if isinstance(settings, list):
        for line in settings:
            typer.echo(line, err=True)
        raise typer.Exit(EXIT_ERROR)
    if owns_schema and settings.database_credentials is not None:
        typer.echo(LEASED_OWNER, err=True)
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(asyncio.run(_main(work, settings, creates_database=creates_database)))


async def _main(work: Work, settings: Settings, *, creates_database: bool) -> int:
    configure_logging(settings.log_level)
    quiet_abandoned_probes()
    try:
        settings, secrets = await resolve_settings(settings)
    except SecretSettingError as error:
        typer.echo(f"error: {error}", err=True)
        return EXIT_UNREACHABLE if error.unreachable else EXIT_ERROR
    try:
        return await _with_secrets(work, settings, secrets, creates_database=creates_database)
    finally:
        await secrets.aclose()


async def _with_secrets(
    work: Work, settings: Settings, secrets: ResolvedSecrets, *, creates_database: bool
) -> int:
    # At run time only (see the module's docstring).
    from ledgerd.main import database_checks  # noqa: PLC0415
    from ledgerd.main.container import build_container  # noqa: PLC0415
    from ledgerd.platform.auth.keys import KeySetError  # noqa: PLC0415
    from ledgerd.platform.auth.sealed_keys import SealedKeySetError  # noqa: PLC0415

    url = settings.database_url
    try:
        if not creates_database:
            database_checks.require_existing(url)
    except database_checks.DatabaseProblemError as error:
        typer.echo(f"error: {error}", err=True)
        return EXIT_ERROR
    container = build_container(settings, secrets=secrets)
    try:
        engine = await container.get(AsyncEngine)
        await database_checks.require_reachable(engine, url)
        if not creates_database:
            await database_checks.require_current_schema(engine, url)
        return await work(container, settings)
    except LedgerdError as error:
        typer.echo(f"error {error.code}: {error.message}", err=True)
        typer.echo(f"(database: {database_checks.describe(url)})", err=True)
        return EXIT_ERROR
    except (database_checks.DatabaseProblemError, CannotListenError, CertificateFileError) as error:
        typer.echo(f"error: {error}", err=True)
        return EXIT_ERROR
    except database_checks.DatabaseUnreachableError as error:
        typer.echo(f"error: {error}", err=True)
        return EXIT_UNREACHABLE
    except KeySetError as error:
        # The messages name wrapping keys by fingerprint only, never any key material.
        subject = (
            "LEDGERD_SIGNING_KEYS_SECRET"
            if isinstance(error, SealedKeySetError)
            else "the stored signing key set"
        )
        typer.echo(f"error: {subject}: {error}", err=True)
        return EXIT_ERROR
    finally:
        await container.close()


async def ensure_schema(container: AsyncContainer, settings: Settings) -> None:
    """The embedded database migrates itself; a shared server is migrated on purpose only."""
    # At run time only (see the module's docstring).
    from ledgerd.main import database_checks  # noqa: PLC0415
    from ledgerd.main.migrations import MIGRATIONS  # noqa: PLC0415
    from ledgerd.platform.db.migrations import current_revisions  # noqa: PLC0415

    engine = await container.get(AsyncEngine)
    if await MIGRATIONS.is_current(engine):
        return
    if not is_sqlite(settings.database_url):
        database = database_checks.describe(settings.database_url)
        raise database_checks.SchemaNotCurrentError(database, await current_revisions(engine))
    await MIGRATIONS.upgrade(engine)
