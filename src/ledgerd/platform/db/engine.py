"""Async SQLAlchemy engines for the two supported databases, chosen by URL alone."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_only

SQLITE_BEGIN_OPTION = "ledgerd_sqlite_begin"
SQLITE_BUSY_MS_OPTION = "ledgerd_sqlite_busy_ms"
# Seconds a SQLite writer waits for the single write lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 30


# Foreign-key checks run as cached plans in each server session. Left to PostgreSQL's default,
# a session that starts on a near-empty journal settles on a generic sequential-scan plan and
# keeps it while the tables grow: measured, a batch of 800 transfers went from 0.5 s to 3.6 s
# in ten batches, nearly all of it in the entries insert's FK checks. Custom plans are made
# for the table as it is now (an index lookup), at a small planning cost per check; a flat
# ~0.3 s per 800-transfer batch in the same measurement.
POSTGRES_SESSION_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


class _RollbackOnCloseConnection(sqlite3.Connection):
    """A SQLite connection that ends its transaction when closed, whatever is still open.

    ``sqlite3_close_v2`` with a statement not yet finalized (a SELECT executed but not fetched,
    which is where a cancelled task leaves one) only marks the connection closed: it keeps its
    transaction, and with it the database's write lock, until that statement is finalized,
    which Python does when the garbage collector frees the cursor. SQLAlchemy closes a
    connection exactly then, when a cancellation lands inside a statement; every later writer
    waited for the collector (issue 11). A ROLLBACK ends the transaction at once even with
    statements open (they fail on their next step), so the lock is freed before the close.
    """

    def close(self) -> None:
        try:
            if self.in_transaction:
                self.rollback()
        finally:
            super().close()


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(  # noqa: PLR0913 - the database's URL and its client-side limits
    url: str,
    *,
    pool_size: int = 10,
    pool_timeout_s: float = 5.0,
    connect_timeout_s: float = 5.0,
    statement_timeout_s: float = 30.0,
    echo: bool = False,
    current_url: Callable[[], str] | None = None,
    credentials_refused: Callable[[str | None], Awaitable[None]] | None = None,
) -> AsyncEngine:
    """An engine for ``sqlite+aiosqlite://`` or ``postgresql+asyncpg://`` URLs.

    PostgreSQL's limits are the client's own, for a server that stops answering (a network
    that drops packets never closes the connection, and nothing else would end the wait):
    ``pool_timeout_s`` for a free pooled connection, ``connect_timeout_s`` for a new one,
    ``statement_timeout_s`` for any statement's answer. Each ends in UNAVAILABLE (or, during
    COMMIT, OUTCOME_UNKNOWN). A request's own deadline is enforced besides, on the server.

    ``current_url`` (PostgreSQL): asked for the URL each time a connection is opened, so
    rotated credentials (a secret store's) are used by every new connection; connections
    already open keep theirs until the pool recycles them. ``credentials_refused``: awaited
    with the user name when the server refuses a new connection's credentials (a leased role
    revoked), before the connection is tried once more with what ``current_url`` says then.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.get_driver_name() != "aiosqlite":
            msg = f"SQLite URLs must use the aiosqlite driver (sqlite+aiosqlite://), got {url!r}"
            raise ValueError(msg)
        engine = create_async_engine(
            parsed,
            echo=echo,
            # aiosqlite hands these to sqlite3.connect in its worker thread, where every close
            # (graceful, forced, or by the garbage collector) runs.
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "factory": _RollbackOnCloseConnection},
        )
        _make_sqlite_transactional(engine)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "asyncpg":
            msg = f"PostgreSQL URLs must use asyncpg (postgresql+asyncpg://), got {url!r}"
            raise ValueError(msg)
        engine = create_async_engine(
            parsed,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=pool_timeout_s,
            pool_pre_ping=True,
            connect_args={
                "server_settings": POSTGRES_SESSION_SETTINGS,
                "timeout": connect_timeout_s,
                "command_timeout": statement_timeout_s,
            },
        )
        if current_url is not None:
            _connect_with_current_url(engine, current_url, credentials_refused)
        return engine
    msg = f"unsupported database {backend!r}: use sqlite+aiosqlite:// or postgresql+asyncpg://"
    raise ValueError(msg)


def _connect_with_current_url(
    engine: AsyncEngine,
    current_url: Callable[[], str],
    credentials_refused: Callable[[str | None], Awaitable[None]] | None,
) -> None:
    """Open each new connection with what ``current_url`` says now (user, password, host...)."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def _on_connect(
        dialect: Any,  # noqa: ANN401 - SQLAlchemy's dialect, untyped here
        _record: ConnectionPoolEntry,
        cargs: list[Any],
        cparams: dict[str, Any],
    ) -> Any:  # noqa: ANN401 - the DB-API connection, or None for SQLAlchemy to connect
        url = make_url(current_url())
        _args, url_params = dialect.create_connect_args(url)
        cparams.update(url_params)
        if credentials_refused is None:
            return None
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as error:
            if not _credentials_refused(error):
                raise
            # The pool connects inside SQLAlchemy's greenlet bridge, so the event loop's
            # coroutine (new credentials from the store) can be awaited from this sync hook.
            await_only(credentials_refused(url.username))
            _args, url_params = dialect.create_connect_args(make_url(current_url()))
            cparams.update(url_params)
            return dialect.connect(*cargs, **cparams)


def _credentials_refused(error: BaseException) -> bool:
    """Whether the server refused the role or its password (SQLSTATE class 28)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, asyncpg.InvalidAuthorizationSpecificationError):
            return True
        cause = cause.__cause__
    return False


def _make_sqlite_transactional(engine: AsyncEngine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, begin transactions, and begin them IMMEDIATE.

    The sqlite3 module otherwise delays BEGIN until the first write, so a read-then-write
    transaction can fail with "database is locked" when it tries to upgrade. Taking the write
    lock up front makes writers queue (for up to the busy timeout) and never fail half-way.
    WAL lets readers proceed alongside the writer; synchronous=FULL makes each commit durable.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:  # noqa: ANN401 - the DB-API connection is untyped
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            "foreign_keys=ON",
            f"busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:  # noqa: ANN401 - SQLAlchemy passes a sync Connection
        options = connection.get_execution_options()
        # Wait for the write lock no longer than the request's deadline allows. Set on every
        # begin, since pooled connections carry the previous request's value.
        busy_ms = int(options.get(SQLITE_BUSY_MS_OPTION, SQLITE_BUSY_TIMEOUT_S * 1000))
        connection.exec_driver_sql(f"PRAGMA busy_timeout={busy_ms}")
        mode = options.get(SQLITE_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")
