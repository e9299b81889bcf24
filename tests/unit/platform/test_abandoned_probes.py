"""asyncpg's abandoned TLS probe is reported at DEBUG; every other unretrieved error as before.

The probe is asyncpg's own protocol object (``connect_utils.TLSUpgradeProto``), losing its
connection before anything awaited its answer: what happens when the task opening a connection
is cancelled as ``loop.create_connection`` finishes (seen once as an ERROR after a stalled
``serve`` had logged "ledgerd stopped", tests/faults/test_database_outage.py).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
from collections.abc import AsyncIterator

import pytest
from asyncpg import connect_utils

from ledgerd.platform.db.abandoned_probes import report_quietly


@pytest.fixture
async def handler_restored() -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    before = loop.get_exception_handler()
    yield
    loop.set_exception_handler(before)


def _abandon_a_probe() -> None:
    """The TLS probe of asyncpg losing its connection, nobody awaiting the answer; dropped."""
    loop = asyncio.get_running_loop()
    probe = connect_utils.TLSUpgradeProto(
        loop, "127.0.0.1", 5432, ssl.create_default_context(), ssl_is_advisory=True
    )
    probe.connection_lost(None)
    del probe
    gc.collect()  # the unretrieved future is reported as it is collected


def _abandon_another_error() -> None:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_exception(ConnectionError("the peer went away"))
    del future
    gc.collect()


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The first line of every ERROR record (asyncio's names the future on the next)."""
    return [r.getMessage().splitlines()[0] for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.usefixtures("handler_restored")
async def test_asyncio_reports_an_abandoned_probe_as_an_error_by_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What the handler is for: without it, asyncpg's leftover is an ERROR with a traceback."""
    asyncio.get_running_loop().set_exception_handler(None)
    with caplog.at_level(logging.DEBUG):
        _abandon_a_probe()
    assert _errors(caplog) == ["Future exception was never retrieved"]


@pytest.mark.usefixtures("handler_restored")
async def test_the_abandoned_probe_is_a_debug_record(caplog: pytest.LogCaptureFixture) -> None:
    asyncio.get_running_loop().set_exception_handler(report_quietly)
    with caplog.at_level(logging.DEBUG):
        _abandon_a_probe()
    assert _errors(caplog) == []
    assert [
        r.getMessage() for r in caplog.records if r.name == "ledgerd.platform.db.abandoned_probes"
    ] == [
        (
            "a database connection abandoned while it was being opened: "
            "unexpected connection_lost() call"
        )
    ]


@pytest.mark.usefixtures("handler_restored")
async def test_any_other_unretrieved_error_is_still_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    asyncio.get_running_loop().set_exception_handler(report_quietly)
    with caplog.at_level(logging.DEBUG):
        _abandon_another_error()
    assert _errors(caplog) == ["Future exception was never retrieved"]
