"""The SQL unit of work: one transaction per block, made current through a contextvar.

Repositories are stateless and app-wide; they find the transaction of the task that calls them
with ``current_connection()``. A task (and the tasks it spawns, which copy its context) thus
takes part in the caller's transaction without any parameter being threaded through.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledgerd.kernel import deadline
from ledgerd.kernel.errors import ConcurrencyConflictError
from ledgerd.platform.db.engine import SQLITE_BEGIN_OPTION, SQLITE_BUSY_MS_OPTION

_current: ContextVar[AsyncConnection | None] = ContextVar("ledgerd_connection", default=None)
_current_transaction: ContextVar[_SqlTransaction | None] = ContextVar(
    "ledgerd_transaction", default=None
)
log = logging.getLogger(__name__)

# PostgreSQL cancelled a statement: with our statement_timeout, the request's deadline passed.
_QUERY_CANCELED = "57014"
# PostgreSQL SQLSTATEs that mean "another transaction won; the same work may succeed if rerun".
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


def current_connection() -> AsyncConnection:
    connection = _current.get()
    if connection is None:
        msg = "no unit of work is active: wrap repository calls in `async with uow.begin()`"
        raise RuntimeError(msg)
    return connection


def after_commit(callback: Callable[[], object]) -> None:
    """Run ``callback`` once the current unit of work has committed (never if it does not).

    For in-process signals about what a transaction wrote (wake the outbox relay): sending
    them before the commit would announce rows nobody else can see yet, or ever.
    """
    transaction = _current_transaction.get()
    if transaction is None:
        msg = "no unit of work is active: after_commit() needs one"
        raise RuntimeError(msg)
    transaction.on_commit.append(callback)


class _SqlTransaction:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self.committed = False
        self.on_commit: list[Callable[[], object]] = []

    async def commit(self) -> None:
        await self._connection.commit()
        self.committed = True
        for callback in self.on_commit:
            try:
                callback()
            except Exception:
                # The transaction is committed whatever a listener does; say so and go on.
                log.exception("an after-commit callback failed")


def _sqlstate(error: DBAPIError) -> str | None:
    original = getattr(error, "orig", None)
    state = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    return state if isinstance(state, str) else None


def _deadline_stopped(error: DBAPIError) -> bool:
    """Whether the database gave up because the request's deadline passed."""
    if deadline.remaining() is None:
        return False
    if _sqlstate(error) == _QUERY_CANCELED:
        return True
    # SQLite's busy timeout, bounded by the deadline, ran out while waiting for the lock.
    return deadline.remaining() == 0 and "database is locked" in str(error.orig)


def _is_unique_violation(error: IntegrityError) -> bool:
    return _sqlstate(error) == "23505" or "UNIQUE constraint failed" in str(error.orig)


class SqlAlchemyUnitOfWork:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"

    @property
    def dialect_name(self) -> str:
        """``postgresql`` or ``sqlite``: for the few statements that differ between them."""
        return str(self._engine.dialect.name)

    async def _configure(self, connection: AsyncConnection, *, read_only: bool) -> None:
        if read_only and self._postgres:
            # One snapshot for every statement, so a multi-query read is consistent.
            await connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        elif read_only:
            await connection.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})
        left = deadline.remaining()
        if left is not None and not self._postgres:
            # SQLite waits for its write lock inside a thread that cancelling the task
            # cannot stop; bound the wait itself by the deadline instead.
            busy_ms = max(1, int(left * 1000))
            await connection.execution_options(**{SQLITE_BUSY_MS_OPTION: busy_ms})

    async def _bound_by_deadline(self, connection: AsyncConnection) -> None:
        """Make PostgreSQL give up on its own when the request's deadline passes.

        Cancelling the task stops our side; the statement timeout stops the server's side
        (including waiting for row locks) even if the cancel request is lost. SQLite runs
        in-process and is interrupted by the task's cancellation alone.
        """
        left = deadline.remaining()
        if left is None:
            return
        if left <= 0:
            raise deadline.DeadlineExceededError
        if self._postgres:
            milliseconds = max(1, int(left * 1000))
            await connection.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")

    @asynccontextmanager
    async def begin(self, *, read_only: bool = False) -> AsyncIterator[_SqlTransaction]:
        if _current.get() is not None:
            msg = "a unit of work is already active in this task; units of work do not nest"
            raise RuntimeError(msg)
        async with self._engine.connect() as connection:
            await self._configure(connection, read_only=read_only)
            token = _current.set(connection)
            transaction = _SqlTransaction(connection)
            transaction_token = _current_transaction.set(transaction)
            try:
                await connection.begin()
                await self._bound_by_deadline(connection)
                yield transaction
            except IntegrityError as error:
                if not _is_unique_violation(error):
                    raise
                # A unique key raced by a concurrent writer: rerunning sees its row and decides.
                raise ConcurrencyConflictError(f"concurrent write: {error.orig}") from error
            except DBAPIError as error:
                if _deadline_stopped(error):
                    raise deadline.DeadlineExceededError from error
                if _sqlstate(error) in _RETRYABLE_SQLSTATES:
                    raise ConcurrencyConflictError(
                        f"transaction lost a race: {error.orig}"
                    ) from error
                raise
            finally:
                _current.reset(token)
                _current_transaction.reset(transaction_token)
                if not transaction.committed and connection.in_transaction():
                    await connection.rollback()
