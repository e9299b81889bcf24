"""The SQL unit of work: one transaction per block, made current through a contextvar.

Repositories are stateless and app-wide; they find the transaction of the task that calls them
with ``current_connection()``. A task (and the tasks it spawns, which copy its context) thus
takes part in the caller's transaction without any parameter being threaded through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledgerd.kernel import deadline
from ledgerd.kernel.errors import (
    ConcurrencyConflictError,
    LedgerdError,
    OutcomeUnknownError,
    unavailable,
)
from ledgerd.platform.db.engine import SQLITE_BEGIN_OPTION, SQLITE_BUSY_MS_OPTION
from ledgerd.platform.db.write_activity import WriteActivity, write_activity
from ledgerd.platform.throttled_log import ThrottledLog

_current: ContextVar[AsyncConnection | None] = ContextVar("ledgerd_connection", default=None)
_current_transaction: ContextVar[_SqlTransaction | None] = ContextVar(
    "ledgerd_transaction", default=None
)
log = logging.getLogger(__name__)

T = TypeVar("T")

# PostgreSQL cancelled a statement: with our statement_timeout, the request's deadline passed.
_QUERY_CANCELED = "57014"
# PostgreSQL SQLSTATEs that mean "another transaction won; the same work may succeed if rerun".
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
# SQLSTATE classes that mean the server cannot serve us now: 08 connection exception, 28
# invalid authorization, 3D no such database, 53 insufficient resources (too many
# connections, disk full), 57P operator intervention (shutting down, starting up).
_OUTAGE_SQLSTATE_PREFIXES = ("08", "28", "3D", "53", "57P")
# What SQLite says when its file cannot be used now (the write lock held past the busy
# timeout, the file gone or unreadable).
_SQLITE_OUTAGES = ("database is locked", "unable to open database file", "disk I/O error")


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
    def __init__(self, connection: AsyncConnection, writes: WriteActivity | None) -> None:
        self._connection = connection
        self._writes = writes  # told of the commit; None for a read-only transaction
        self.committed = False
        self.on_commit: list[Callable[[], object]] = []

    async def commit(self) -> None:
        """Commit; once COMMIT is sent, its real outcome is the answer, cancelled or not.

        A cancellation (the caller's deadline, a client gone) that lands while COMMIT is on its
        way cannot take it back: the database commits or not regardless. Stopping there would
        turn a committed transaction into a "deadline exceeded", a definite failure that is
        false. So COMMIT runs to its end and its outcome stands; a cancellation meanwhile is
        overtaken by it. A connection lost during COMMIT leaves the outcome unknown, and
        that is what the caller is told.
        """
        try:
            await _to_completion(self._connection.commit())
        except (DBAPIError, OSError) as error:
            if _unreachable(error) and self._connection.dialect.name == "postgresql":
                raise OutcomeUnknownError(
                    "the connection to the database was lost during COMMIT"
                ) from error
            raise
        self.committed = True
        if self._writes is not None:
            self._writes.committed()
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


def _unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot serve us now (as opposed to refusing us)."""
    if isinstance(error, PoolTimeoutError):
        return True  # every pooled connection busy for the pool's whole timeout
    if isinstance(error, OSError):
        # Refused, reset, unreachable (raised raw while connecting), or the driver's own
        # connect or statement timeout. A request's deadline is not among them: inside a unit
        # of work it arrives as a cancellation.
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True  # the connection broke under a statement
    state = _sqlstate(error)
    if state is not None:
        # A statement the server cancelled that our deadline did not (checked before this).
        return state == _QUERY_CANCELED or state.startswith(_OUTAGE_SQLSTATE_PREFIXES)
    return any(text in str(error.orig) for text in _SQLITE_OUTAGES)


async def _to_completion(work: Awaitable[T]) -> T:
    """Await ``work`` to its end, even through cancellations of the caller meanwhile.

    A cancellation that came meanwhile is overtaken by the work's outcome, which is returned
    (or raised): what the caller would have stopped has happened.
    """
    task = asyncio.ensure_future(work)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise  # the work itself was cancelled, not merely its caller


def _is_unique_violation(error: IntegrityError) -> bool:
    return _sqlstate(error) == "23505" or "UNIQUE constraint failed" in str(error.orig)


class SqlAlchemyUnitOfWork:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._writes = write_activity(engine)
        # An outage fails every request the same way: one line per interval says so.
        self._outages = ThrottledLog(log)

    def _unavailable(self, error: BaseException) -> LedgerdError:
        self._outages.log(
            logging.WARNING,
            "database outage",
            "the database is unavailable (%s: %s); answering UNAVAILABLE",
            type(error).__name__,
            str(getattr(error, "orig", error)).split("\n", 1)[0][:200],
            error=error,
        )
        return unavailable("the database")

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
        try:
            connection = await self._engine.connect().start()
        except (DBAPIError, OSError, PoolTimeoutError) as error:
            if _unreachable(error):
                raise self._unavailable(error) from error
            raise
        try:
            async with self._transaction(connection, read_only=read_only) as transaction:
                yield transaction
        finally:
            # Handing the connection back is never abandoned half-way (it would stay checked
            # out), and a cancellation meanwhile does not turn work already committed into a
            # failure: the unit of work is over, whatever its caller does now.
            await _to_completion(connection.close())

    @asynccontextmanager
    async def _transaction(
        self, connection: AsyncConnection, *, read_only: bool
    ) -> AsyncIterator[_SqlTransaction]:
        token = _current.set(connection)
        transaction = _SqlTransaction(connection, None if read_only else self._writes)
        transaction_token = _current_transaction.set(transaction)
        try:
            await self._configure(connection, read_only=read_only)
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
                raise ConcurrencyConflictError(f"transaction lost a race: {error.orig}") from error
            if _unreachable(error):
                raise self._unavailable(error) from error
            raise
        except OSError as error:
            # The driver's own (connect or statement) timeout, or a socket error it let through.
            raise self._unavailable(error) from error
        finally:
            _current.reset(token)
            _current_transaction.reset(transaction_token)
            if not transaction.committed and connection.in_transaction():
                try:
                    await connection.rollback()
                except (DBAPIError, OSError):
                    # The connection is gone, and its transaction with it: nothing to undo,
                    # and the error that brought us here is the one to report.
                    log.debug("rollback on a broken connection failed", exc_info=True)
