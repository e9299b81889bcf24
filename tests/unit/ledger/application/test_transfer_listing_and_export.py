"""The listing queries (transfers, entries) and the statement export on the fakes."""

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from enum import StrEnum

import pytest

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.paging import MAX_PAGE_SIZE, decode_int_cursor, encode_cursor
from ledgerd.ledger.application.post_transfers import PostTransfers
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.domain.model import Entry, Transfer, TransferKind, TransferStatus
from ledgerd.ledger.domain.requests import CaptureRequest, TransferRequest, VoidRequest
from tests.fakes.clock import START
from tests.fakes.ledger_app import LedgerApp
from tests.unit.ledger.application.scenario import LEDGER, create_ledger, ok, open_account, pay

# More entries than export_entries reads per page.
MORE_THAN_A_PAGE = MAX_PAGE_SIZE + 205
WAIT_LIMIT_S = 10


async def _error(awaitable: object) -> StrEnum:
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

    assert unknown is LedgerErrorCode.ACCOUNT_NOT_FOUND
    assert elsewhere is LedgerErrorCode.LEDGER_NOT_FOUND
    assert len(timeline) == 6


async def test_list_transfers_of_another_ledger(app: LedgerApp, timeline: list[Transfer]) -> None:
    await create_ledger(app, "other")

    assert await _pages(app, ledger_id="other") == [[]]
    assert len(timeline) == 6
    code = await _error(app.queries.list_transfers("nope"))
    assert code is LedgerErrorCode.LEDGER_NOT_FOUND


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

    assert await _error(first(unknown_account)) is LedgerErrorCode.ACCOUNT_NOT_FOUND
    assert await _error(first(unknown_ledger)) is LedgerErrorCode.LEDGER_NOT_FOUND
    assert await _error(first(malformed)) is ErrorCode.VALIDATION_FAILED


async def _of(
    app: LedgerApp,
    limit: int | None = None,
    *,
    kind: TransferKind | None = None,
    status: TransferStatus | None = None,
    account_id: str | None = None,
) -> list[list[int]]:
    pages: list[list[int]] = []
    cursor: str | None = None
    while True:
        page = await app.queries.list_transfers(
            LEDGER, account_id=account_id, kind=kind, status=status, cursor=cursor, limit=limit
        )
        pages.append([transfer.sequence for transfer in page.items])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


async def test_list_transfers_filters_by_kind_and_status(
    app: LedgerApp, timeline: list[Transfer]
) -> None:
    post = app.post_transfers.post_one
    open_hold = (await post(LEDGER, pay("k7", ("alice", "bob", 5), pending=True))).transfer
    captured = (await post(LEDGER, pay("k8", ("bank", "bob", 9), pending=True))).transfer
    await post(LEDGER, CaptureRequest(captured.id))  # #9
    hold, pending = TransferKind.PENDING, TransferStatus.PENDING

    # The open holds: of kind hold, still pending (#4 was voided by #6, #8 captured by #9).
    assert await _of(app, kind=hold, status=pending) == [[open_hold.sequence]]
    assert await _of(app, kind=hold) == [[4, 7, 8]]
    assert await _of(app, 1, kind=hold) == [[4], [7], [8]]
    assert await _of(app, status=pending) == [[7]]
    assert await _of(app, status=TransferStatus.VOIDED) == [[4]]
    assert await _of(app, status=TransferStatus.CAPTURED) == [[8]]
    assert await _of(app, kind=TransferKind.VOID) == [[6]]
    assert await _of(app, kind=TransferKind.CAPTURE) == [[9]]
    assert await _of(app, 2, status=TransferStatus.POSTED) == [[1, 2], [3, 5], [6, 9]]
    assert await _of(app, kind=TransferKind.POSTING, status=TransferStatus.VOIDED) == [[]]
    assert await _of(app, kind=hold, account_id="bank") == [[8]]
    # The status is the current one: once voided, a hold is no longer open.
    await post(LEDGER, VoidRequest(open_hold.id))
    assert await _of(app, kind=hold, status=pending) == [[]]
    assert len(timeline) == 6


# --- list_entries in a time range ------------------------------------------------------------


async def _entry_pages(
    app: LedgerApp,
    account_id: str,
    limit: int | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[list[int]]:
    pages: list[list[int]] = []
    cursor: str | None = None
    while True:
        page = await app.queries.list_entries(
            LEDGER, account_id, start=start, end=end, cursor=cursor, limit=limit
        )
        pages.append([entry.account_sequence for entry in page.items])
        if page.next_cursor is None:
            return pages
        assert decode_int_cursor(page.next_cursor) == page.items[-1].account_sequence
        cursor = page.next_cursor


async def test_list_entries_in_a_time_range(app: LedgerApp, timeline: list[Transfer]) -> None:
    statement = await _statement(app, "alice")
    t0, t1, t2, t3 = (START + timedelta(minutes=n) for n in range(4))
    tiny = timedelta(microseconds=1)

    def created_in(start: datetime, end: datetime) -> list[int]:
        return [e.account_sequence for e in statement if start <= e.created_at < end]

    # alice: #1 at t0; #3 and the hold #4 at t1; the void #6 at t3.
    assert [e.created_at for e in statement] == [t0, t1, t1, t3]
    assert await _entry_pages(app, "alice", start=t1) == [[2, 3, 4]]
    assert await _entry_pages(app, "alice", start=t1 + tiny) == [[4]]
    assert await _entry_pages(app, "alice", end=t1) == [[1]]
    assert await _entry_pages(app, "alice", end=t1 + tiny) == [[1, 2, 3]]
    assert await _entry_pages(app, "alice", start=t1, end=t3) == [created_in(t1, t3)]
    assert await _entry_pages(app, "alice", start=t2, end=t2) == [[]]  # an empty window
    assert await _entry_pages(app, "alice", start=t3 + tiny) == [[]]
    # Pages of a window are cut after the window: none is skipped or repeated.
    assert await _entry_pages(app, "alice", 1, start=t1) == [[2], [3], [4]]
    assert await _entry_pages(app, "alice", 2, start=t0 + tiny, end=t3) == [[2, 3]]
    assert len(timeline) == 6


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"start": START + timedelta(minutes=2), "end": START}, "end_time"),
        ({"start": START.replace(tzinfo=None)}, "start_time"),
        ({"end": START.replace(tzinfo=None)}, "end_time"),
    ],
    ids=["swapped", "naive start", "naive end"],
)
async def test_list_entries_refuses_a_bad_window(
    app: LedgerApp, kwargs: dict[str, datetime], field: str
) -> None:
    # Before looking the account up: the request is wrong whatever the account.
    for account_id in ("alice", "nobody"):
        with pytest.raises(LedgerdError) as caught:
            await app.queries.list_entries(LEDGER, account_id, **kwargs)  # type: ignore[arg-type]
        assert caught.value.code is ErrorCode.VALIDATION_FAILED
        assert caught.value.details == {"field": field}


# --- export_entries after a sequence ---------------------------------------------------------


async def _export_after(app: LedgerApp, account_id: str, after_sequence: int) -> list[Entry]:
    entries = app.queries.export_entries(LEDGER, account_id, after_sequence=after_sequence)
    return [entry async for entry in entries]


@pytest.mark.parametrize(
    "after_sequence",
    [0, 1, MAX_PAGE_SIZE - 1, MAX_PAGE_SIZE, MORE_THAN_A_PAGE - 1, MORE_THAN_A_PAGE],
)
async def test_export_after_a_sequence_is_the_rest_of_the_statement(
    app: LedgerApp, after_sequence: int
) -> None:
    await _post_many(
        app, [pay(f"k{n}", ("bank", "alice", n)) for n in range(1, MORE_THAN_A_PAGE + 1)]
    )
    statement = await _statement(app, "alice")

    rest = await _export_after(app, "alice", after_sequence)

    assert rest == statement[after_sequence:]


async def test_export_beyond_the_last_entry_is_empty(app: LedgerApp) -> None:
    await _post_many(app, [pay(f"k{n}", ("bank", "alice", 1)) for n in range(3)])

    assert await _export_after(app, "alice", 3) == []
    assert await _export_after(app, "alice", 4) == []
    assert await _export_after(app, "alice", 2**63 - 1) == []
    assert await _export_after(app, "bob", 1) == []  # no entries at all


async def test_a_cut_export_resumes_after_the_last_entry_received(app: LedgerApp) -> None:
    await _post_many(
        app, [pay(f"k{n}", ("bank", "alice", n)) for n in range(1, MORE_THAN_A_PAGE + 1)]
    )
    received: list[Entry] = []
    first = app.queries.export_entries(LEDGER, "alice")
    async for entry in first:
        received.append(entry)
        if len(received) == MAX_PAGE_SIZE + 3:
            break  # the client went away mid-page
    await first.aclose()

    resumed = await _export_after(app, "alice", received[-1].account_sequence)

    assert received + resumed == await _statement(app, "alice")


async def test_export_refuses_a_negative_after_sequence(app: LedgerApp) -> None:
    for account_id in ("alice", "nobody"):  # whatever the account
        with pytest.raises(LedgerdError) as caught:
            await _export_after(app, account_id, -1)
        assert caught.value.code is ErrorCode.VALIDATION_FAILED
        assert caught.value.details == {"field": "after_sequence"}
