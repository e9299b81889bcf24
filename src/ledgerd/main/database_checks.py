"""What every command checks of its database before it works on it, in words a user can act on.

A command that only reads (or that changes rows but never the schema) must not create an
embedded database where there was none, and none may run on a schema other than the one the
package ships: each says which database it looked at and what to do instead.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.main.migrations import MIGRATIONS
from ledgerd.platform.db.engine import is_sqlite
from ledgerd.platform.db.migrations import current_revisions

DATABASE_ENV = "LEDGERD_DATABASE_URL"
# PostgreSQL's invalid_catalog_name: the server is there, the database is not.
_NO_SUCH_DATABASE = "3D000"


class DatabaseProblemError(Exception):
    """The database is not one a command can work on; the message says why and what to do."""


class SchemaNotCurrentError(DatabaseProblemError):
    def __init__(self, database: str, revisions: frozenset[str]) -> None:
        held = ", ".join(sorted(revisions)) or "none"
        super().__init__(
            f"the database {database} is at revision {held}, not the latest: "
            "run `ledgerd migrate` first"
        )


class DatabaseUnreachableError(Exception):
    """The database could not be connected to: not a mistake in its form, so a distinct exit."""


def describe(url: str) -> str:
    """The database as a user can find it: a SQLite file's absolute path, a server URL."""
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None:
        return str(sqlite_file.resolve())
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_file(url: str) -> Path | None:
    if not is_sqlite(url):
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def require_existing(url: str) -> None:
    """Refuse an embedded database file that is not there, rather than create an empty one."""
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None and not sqlite_file.exists():
        msg = (
            f"no database at {sqlite_file.resolve()} ({DATABASE_ENV}): set {DATABASE_ENV} to "
            "the one to use, or create it with `ledgerd migrate`"
        )
        raise DatabaseProblemError(msg)


async def require_reachable(engine: AsyncEngine, url: str) -> None:
    """Connect once, so that an unreachable server is one line and not a traceback later."""
    try:
        async with engine.connect():
            pass
    except (OSError, DBAPIError) as error:
        cause = getattr(error, "orig", None) or error
        reason = (str(cause).splitlines() or [repr(cause)])[0]
        if getattr(cause, "sqlstate", None) == _NO_SUCH_DATABASE:
            # The server answered: the URL names a database it does not have.
            msg = (
                f"{DATABASE_ENV} names a database the server does not have: {reason} "
                f"({describe(url)}); create it (createdb) or fix the name"
            )
            raise DatabaseProblemError(msg) from error
        msg = f"cannot connect to the database {describe(url)} ({DATABASE_ENV}): {reason}"
        raise DatabaseUnreachableError(msg) from error


async def require_current_schema(engine: AsyncEngine, url: str) -> None:
    if not await MIGRATIONS.is_current(engine):
        raise SchemaNotCurrentError(describe(url), await current_revisions(engine))
