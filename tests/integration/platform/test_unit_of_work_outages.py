"""A database outage is UNAVAILABLE (nothing written, retry), or OUTCOME_UNKNOWN at COMMIT.

Issue 11, item 3: during a PostgreSQL cut clients got INTERNAL / 500 "internal error" with no
retry hint, which gRPC retry policies never retry. A TCP proxy the test controls stands between
the unit of work and PostgreSQL; the test cuts it at each point of a transaction.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.kernel.errors import ErrorCode, LedgerdError, OutcomeUnknownError
from ledgerd.platform.db.engine import create_engine
from ledgerd.platform.db.unit_of_work import SqlAlchemyUnitOfWork, current_connection
from tests.fakes.tcp_proxy import TcpProxy

WAIT_LIMIT_S = 30.0


@pytest.fixture
async def proxy(postgres_url: str) -> AsyncIterator[TcpProxy]:
    url = make_url(postgres_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    yield proxy
    await proxy.aclose()


@pytest.fixture
async def direct(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE items (id integer PRIMARY KEY)"))
    yield engine
    await engine.dispose()


@pytest.fixture
async def through_proxy(
    postgres_url: str,
    proxy: TcpProxy,
    direct: AsyncEngine,  # noqa: ARG001 - it creates the table
) -> AsyncIterator[AsyncEngine]:
    url = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
    engine = create_engine(
        url.render_as_string(hide_password=False),
        pool_timeout_s=0.5,
        connect_timeout_s=0.5,
        statement_timeout_s=0.5,
    )
    yield engine
    await engine.dispose()


async def _items(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as connection:
        return list((await connection.scalars(text("SELECT id FROM items ORDER BY id"))).all())


async def _insert(item_id: int) -> None:
    await current_connection().execute(text("INSERT INTO items (id) VALUES (:id)"), {"id": item_id})


async def _commit(uow: SqlAlchemyUnitOfWork, *steps: Callable[[], Awaitable[None]]) -> None:
    """Run ``steps`` in one unit of work, then commit."""
    async with uow.begin() as tx:
        for step in steps:
            await step()
        await tx.commit()


def _insert_of(item_id: int) -> Callable[[], Awaitable[None]]:
    return functools.partial(_insert, item_id)


def _unavailable(error: pytest.ExceptionInfo[LedgerdError]) -> None:
    assert error.value.code is ErrorCode.UNAVAILABLE
    assert error.value.details == {"retry_after_seconds": "1"}


async def test_a_refused_connection_is_unavailable(
    through_proxy: AsyncEngine, proxy: TcpProxy
) -> None:
    uow = SqlAlchemyUnitOfWork(through_proxy)
    async with proxy.outage():
        with pytest.raises(LedgerdError) as refused:
            await _commit(uow, _insert_of(1))
    _unavailable(refused)
    # Back as soon as the database is: nothing to restart.
    await _commit(uow, _insert_of(2))


async def test_a_connection_cut_mid_transaction_is_unavailable_and_writes_nothing(
    through_proxy: AsyncEngine, proxy: TcpProxy, direct: AsyncEngine
) -> None:
    uow = SqlAlchemyUnitOfWork(through_proxy)
    with pytest.raises(LedgerdError) as cut:
        await _commit(uow, _insert_of(1), proxy.cut, _insert_of(2))
    _unavailable(cut)
    await proxy.restore()
    async with asyncio.timeout(WAIT_LIMIT_S):
        while True:  # until the server notices its client is gone, and rolls back
            if await _backends_of(direct) == 1:
                break
            await asyncio.sleep(0.05)
    assert await _items(direct) == []


async def test_a_connection_cut_at_commit_is_an_unknown_outcome(
    through_proxy: AsyncEngine, proxy: TcpProxy
) -> None:
    uow = SqlAlchemyUnitOfWork(through_proxy)
    with pytest.raises(OutcomeUnknownError) as unknown:
        await _commit(uow, _insert_of(1), proxy.cut)
    assert unknown.value.code is ErrorCode.OUTCOME_UNKNOWN
    assert unknown.value.details == {"retry_after_seconds": "1"}


async def test_a_stalled_connection_is_unavailable_once_the_statement_timeout_passes(
    through_proxy: AsyncEngine, proxy: TcpProxy, direct: AsyncEngine
) -> None:
    uow = SqlAlchemyUnitOfWork(through_proxy)
    await _commit(uow, _insert_of(1))  # a pooled connection, open before the stall
    try:
        with pytest.raises(LedgerdError) as stalled:
            async with asyncio.timeout(WAIT_LIMIT_S):
                await _commit(uow, _insert_of(2), _stalling(proxy), _insert_of(3))
        _unavailable(stalled)
        with pytest.raises(LedgerdError) as still:  # a new connection cannot be made either
            async with asyncio.timeout(WAIT_LIMIT_S):
                await _commit(uow, _insert_of(4))
        _unavailable(still)
    finally:
        proxy.resume()
    await _commit(uow, _insert_of(5))
    assert await _items(direct) == [1, 5]


async def test_a_connection_stalled_at_commit_is_an_unknown_outcome(
    through_proxy: AsyncEngine, proxy: TcpProxy
) -> None:
    uow = SqlAlchemyUnitOfWork(through_proxy)
    try:
        with pytest.raises(OutcomeUnknownError):
            async with asyncio.timeout(WAIT_LIMIT_S):
                await _commit(uow, _insert_of(1), _stalling(proxy))
    finally:
        proxy.resume()


def _stalling(proxy: TcpProxy) -> Callable[[], Awaitable[None]]:
    async def stall() -> None:
        proxy.stall()

    return stall


@pytest.mark.usefixtures("direct")
async def test_an_exhausted_pool_is_unavailable(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=1, pool_timeout_s=0.2)
    uow = SqlAlchemyUnitOfWork(engine)
    release = asyncio.Event()
    holding = asyncio.Barrier(3)

    async def hold() -> None:
        async with uow.begin():
            await holding.wait()
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]  # the pool's one and its overflow
    try:
        await holding.wait()
        with pytest.raises(LedgerdError) as exhausted:
            async with uow.begin():
                pass
        _unavailable(exhausted)
    finally:
        release.set()
        await asyncio.gather(*holders)
        await engine.dispose()


async def test_a_statement_the_server_cancels_is_unavailable(
    postgres_url: str, direct: AsyncEngine
) -> None:
    uow = SqlAlchemyUnitOfWork(direct)

    async def sleeper() -> None:
        async with uow.begin() as tx:
            await _insert(1)
            await current_connection().execute(text("SELECT pg_sleep(30)"))
            await tx.commit()

    sleeping = asyncio.create_task(sleeper())
    dsn = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    try:
        # Again until the statement ends: the backend shows the query as active while it is
        # still being prepared too, and a cancel that lands between two protocol messages
        # interrupts nothing (the statement then sleeps its 30 s and commits).
        async with asyncio.timeout(WAIT_LIMIT_S):
            while not sleeping.done():
                await admin.fetchval(
                    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() "
                    "AND query = 'SELECT pg_sleep(30)' AND state = 'active'"
                )
                await asyncio.wait({sleeping}, timeout=0.05)
    finally:
        await admin.close()
    with pytest.raises(LedgerdError) as cancelled:
        await sleeping
    _unavailable(cancelled)
    assert await _items(direct) == []


async def _backends_of(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        )
    return int(count or 0)
