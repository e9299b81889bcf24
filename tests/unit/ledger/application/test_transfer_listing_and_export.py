"""``LedgerQueries.list_transfers`` and ``LedgerQueries.export_entries`` on the fakes."""

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.paging import MAX_PAGE_SIZE, decode_int_cursor, encode_cursor
from ledgerd.ledger.application.post_transfers import PostTransfers
from ledgerd.ledger.domain.model import Entry, Transfer
from ledgerd.ledger.domain.requests import TransferRequest, VoidRequest
from tests.fakes.clock import START
from tests.fakes.ledger_app import LedgerApp
from tests.unit.ledger.application.scenario import LEDGER, create_ledger, ok, open_account, pay

# More entries than export_entries reads per page.
MORE_THAN_A_PAGE = MAX_PAGE_SIZE + 205
WAIT_LIMIT_S = 10


async def _error(awaitable: object) -> ErrorCode:
    with pytest.raises(LedgerdError) as caught:
        await awaitable  # type: ignore[misc]
    return caught.value.code


async def _post_many(app: LedgerApp, requests: list[TransferRequest]) -> None:
    results = await app.post_transfers(PostTransfers(LEDGER, requests))
    for result in results:
        ok(result)


async def _pages(  # noqa: PLR0913 - the filters of a transfer listing
    app: LedgerApp,
    limit: int | None = None,
    *,
    account_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    ledger_id: str = LEDGER,
) -> list[list[int]]:
    pages: list[list[int]] = []
    cursor: str | None = None
    while True:
        page = await app.queries.list_transfers(
            ledger_id, account_id=account_id, start=start, end=end, cursor=cursor, limit=limit
        )
        pages.append([transfer.sequence for transfer in page.items])
        if page.next_cursor is None:
            return pages
        assert decode_int_cursor(page.next_cursor) == page.items[-1].sequence
        cursor = page.next_cursor


@pytest.fixture
async def timeline(app: LedgerApp) -> list[Transfer]:
    """Six transfers, two a minute from START; alice is in #1, #3, #4 (a hold) and #6 (void)."""
    post = app.post_transfers.post_one
    minute = timedelta(minutes=1)
    posted = [
        (await post(LEDGER, pay("k1", ("bank", "alice", 500)))).transfer,
        (await post(LEDGER, pay("k2", ("bank", "bob", 500)))).transfer,
    ]
    app.clock.advance(minute)
    posted.append((await post(LEDGER, pay("k3", ("alice", "bob", 100)))).transfer)
    posted.append((await post(LEDGER, pay("k4", ("alice", "bob", 50), pending=True))).transfer)
    app.clock.advance(minute)
    posted.append((await post(LEDGER, pay("k5", ("bob", "bank", 10)))).transfer)
    app.clock.advance(minute)
    posted.append((await post(LEDGER, VoidRequest(posted[3].id))).transfer)
    return posted


async def test_list_transfers_pages_in_sequence_order(
    app: LedgerApp, timeline: list[Transfer]
) -> None:
    assert await _pages(app) == [[1, 2, 3, 4, 5, 6]]
    assert await _pages(app, 4) == [[1, 2, 3, 4], [5, 6]]
    assert await _pages(app, 3) == [[1, 2, 3], [4, 5, 6]]
    assert await _pages(app, MAX_PAGE_SIZE) == [[1, 2, 3, 4, 5, 6]]
    everything = await app.queries.list_transfers(LEDGER)
    # Whole transfers in their current state: the hold shows that it was voided.
    assert [t.id for t in everything.items] == [t.id for t in timeline]
    assert everything.items[3] == await app.queries.get_transfer(LEDGER, timeline[3].id)
    assert everything.items[3].status != timeline[3].status


async def test_list_transfers_filters_by_account_and_time(
    app: LedgerApp, timeline: list[Transfer]
) -> None:
    t0, t1, t2 = START, START + timedelta(minutes=1), START + timedelta(minutes=2)
    tiny = timedelta(microseconds=1)

    assert await _pages(app, account_id="alice") == [[1, 3, 4, 6]]
    assert await _pages(app, 1, account_id="alice") == [[1], [3], [4], [6]]
    assert await _pages(app, account_id="bank") == [[1, 2, 5]]
    assert await _pages(app, start=t1) == [[3, 4, 5, 6]]
    assert await _pages(app, start=t1 + tiny) == [[5, 6]]
    assert await _pages(app, end=t1) == [[1, 2]]
    assert await _pages(app, end=t1 + tiny) == [[1, 2, 3, 4]]
    assert await _pages(app, start=t1, end=t2) == [[3, 4]]
    assert await _pages(app, start=t1, end=t1) == [[]]  # an empty window
    with pytest.raises(LedgerdError) as swapped:  # a mistake, not an empty window
        await _pages(app, start=t2, end=t1)
    assert swapped.value.code is ErrorCode.VALIDATION_FAILED
    assert swapped.value.details == {"field": "end_time"}
    assert await _pages(app, end=t0) == [[]]
    assert await _pages(app, 2, account_id="alice", start=t1) == [[3, 4], [6]]
    assert len(timeline) == 6


async def test_list_transfers_of_an_unknown_account_is_an_error(
    app: LedgerApp, timeline: list[Transfer]
) -> None:
    # Unlike an account that exists but never moved, which lists nothing.
    await open_account(app, "idle")
    assert await _pages(app, account_id="idle") == [[]]

    unknown = await _error(app.queries.list_transfers(LEDGER, account_id="nobody"))
    elsewhere = await _error(app.queries.list_transfers("nope", account_id="alice"))

    assert unknown is ErrorCode.ACCOUNT_NOT_FOUND
    assert elsewhere is ErrorCode.LEDGER_NOT_FOUND
    assert len(timeline) == 6


async def test_list_transfers_of_another_ledger(app: LedgerApp, timeline: list[Transfer]) -> None:
    await create_ledger(app, "other")

    assert await _pages(app, ledger_id="other") == [[]]
    assert len(timeline) == 6
    code = await _error(app.queries.list_transfers("nope"))
    assert code is ErrorCode.LEDGER_NOT_FOUND


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cursor": "garbage!"},
        {"cursor": encode_cursor("alice")},
        {"cursor": encode_cursor("-1")},
        {"limit": 0},
        {"limit": MAX_PAGE_SIZE + 1},
        {"account_id": "no pe"},
        {"start": START.replace(tzinfo=None)},
        {"end": START.replace(tzinfo=None)},
    ],
    ids=lambda kwargs: next(iter(kwargs)),
)
async def test_list_transfers_rejects_bad_input(app: LedgerApp, kwargs: dict[str, object]) -> None:
    code = await _error(app.queries.list_transfers(LEDGER, **kwargs))  # type: ignore[arg-type]

    assert code is ErrorCode.VALIDATION_FAILED


async def test_list_transfers_rejects_a_malformed_ledger_id(app: LedgerApp) -> None:
    assert await _error(app.queries.list_transfers("no pe")) is ErrorCode.VALIDATION_FAILED


# --- export_entries --------------------------------------------------------------------------


async def _export(app: LedgerApp, account_id: str, ledger_id: str = LEDGER) -> list[Entry]:
    return [entry async for entry in app.queries.export_entries(ledger_id, account_id)]


async def _statement(app: LedgerApp, account_id: str) -> list[Entry]:
    entries: list[Entry] = []
    cursor: str | None = None
    while True:
        page = await app.queries.list_entries(
            LEDGER, account_id, cursor=cursor, limit=MAX_PAGE_SIZE
        )
        entries.extend(page.items)
        if page.next_cursor is None:
            return entries
        cursor = page.next_cursor


@pytest.mark.parametrize("count", [1, MAX_PAGE_SIZE - 1, MAX_PAGE_SIZE, MORE_THAN_A_PAGE])
async def test_export_yields_every_entry_in_order(app: LedgerApp, count: int) -> None:
    await _post_many(app, [pay(f"k{n}", ("bank", "alice", n)) for n in range(1, count + 1)])
    commits = app.uow.commits

    exported = await _export(app, "alice")

    assert [e.account_sequence for e in exported] == list(range(1, count + 1))
    assert [e.amount for e in exported] == list(range(1, count + 1))
    assert exported == await _statement(app, "alice")
    assert await _export(app, "bank") == await _statement(app, "bank")
    assert app.uow.commits == commits


async def test_export_of_an_account_without_entries(app: LedgerApp) -> None:
    assert await _export(app, "bob") == []


async def test_export_stops_at_the_entries_there_were_when_it_started(app: LedgerApp) -> None:
    await _post_many(app, [pay(f"k{n}", ("bank", "alice", 1)) for n in range(MORE_THAN_A_PAGE)])
    export = app.queries.export_entries(LEDGER, "alice")
    exported: list[Entry] = []
    async with asyncio.timeout(WAIT_LIMIT_S):
        exported.append(await anext(export))
        # No unit of work is held between pages (the fake allows one at a time, so a held
        # one would block this posting); and what it writes is not part of the export.
        await _post_many(app, [pay(f"late{n}", ("bank", "alice", 2)) for n in range(5)])
        exported.extend([entry async for entry in export])

    assert [e.account_sequence for e in exported] == list(range(1, MORE_THAN_A_PAGE + 1))
    assert {e.amount for e in exported} == {1}
    assert len(await _statement(app, "alice")) == MORE_THAN_A_PAGE + 5


async def test_export_checks_its_account_before_yielding(app: LedgerApp) -> None:
    async def first(entries: AsyncIterator[Entry]) -> Entry:
        return await anext(entries)

    unknown_account = app.queries.export_entries(LEDGER, "nope")
    unknown_ledger = app.queries.export_entries("nope", "alice")
    malformed = app.queries.export_entries(LEDGER, "no pe")

    assert await _error(first(unknown_account)) is ErrorCode.ACCOUNT_NOT_FOUND
    assert await _error(first(unknown_ledger)) is ErrorCode.LEDGER_NOT_FOUND
    assert await _error(first(malformed)) is ErrorCode.VALIDATION_FAILED
