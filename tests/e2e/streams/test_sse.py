"""Server-Sent Events over a real socket: order, ids, resume, filters, heartbeats, refusals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from ledgerd.streaming.application.hub import StreamHub
from tests.e2e.rest.support import RestApi, problem
from tests.e2e.streams.support import (
    LEDGER,
    READ_TIMEOUT_S,
    Books,
    SseMessage,
    next_events,
    serve_streams,
    sse_messages,
)

PATH = f"/v1/ledgers/{LEDGER}/events:stream"
POSTED = "ledgerd.v1.TransferPosted"


@pytest.fixture
async def api(migrated_sqlite_url: str) -> AsyncIterator[RestApi]:
    async with serve_streams(migrated_sqlite_url) as served:
        yield served


async def test_events_come_in_order_with_their_sequences_and_resume_after_last_event_id(
    migrated_database_url: str,
) -> None:
    async with serve_streams(migrated_database_url) as api:
        books = Books(api.client)
        await books.open()
        async with api.client.stream("GET", PATH, params={"after": "0"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["x-accel-buffering"] == "no"
            messages = sse_messages(response)
            first = await anext(messages)
            assert first.retry == "2000"
            opened = await next_events(messages, 4)
            await books.pay()
            await books.pay(credit="bob")
            paid = await next_events(messages, 2)
        seen = [*opened, *paid]
        assert [message.id for message in seen] == ["1", "2", "3", "4", "5", "6"]
        assert [message.event for message in seen] == [
            "ledgerd.v1.LedgerCreated",
            *["ledgerd.v1.AccountCreated"] * 3,
            POSTED,
            POSTED,
        ]
        for message in seen:
            document = message.json
            # The CloudEvents structured format, payload in JSON.
            assert document["specversion"] == "1.0"
            assert document["datacontenttype"] == "application/json"
            assert int(document["sequence"]) == int(message.id or "")
            assert document["type"] == message.event
            assert document["partitionkey"] == LEDGER
        legs = paid[1].json["data"]["transfer"]["legs"]
        assert legs[0]["credit_account"] == "bob"

        # Disconnected after 6: three more are posted meanwhile; Last-Event-ID wins over after.
        for _ in range(3):
            await books.pay()
        headers = {"last-event-id": "6"}
        async with api.client.stream(
            "GET", PATH, params={"after": "1"}, headers=headers
        ) as response:
            messages = sse_messages(response)
            missed = await next_events(messages, 3)
            await books.pay(credit="bob")
            live = await next_events(messages, 1)
        assert [message.id for message in (*missed, *live)] == ["7", "8", "9", "10"]


async def test_a_stream_from_now_gets_only_what_is_committed_after_it_opens(api: RestApi) -> None:
    books = Books(api.client)
    await books.open()
    async with api.client.stream("GET", PATH) as response:
        messages = sse_messages(response)
        assert (await anext(messages)).retry is not None
        await books.pay()
        (posted,) = await next_events(messages, 1)
    assert (posted.id, posted.event) == ("5", POSTED)


async def test_filters_by_account_and_by_type(api: RestApi) -> None:
    books = Books(api.client)
    await books.open()
    await books.pay(credit="alice")
    await books.pay(credit="bob")
    await books.pay(debit="alice", credit="bob", amount=50)
    await books.pay(credit="alice")
    by_account = {"after": "0", "account": "bob"}
    async with api.client.stream("GET", PATH, params=by_account) as response:
        bobs = await next_events(sse_messages(response), 3)
    # bob's opening, and the two transfers with an entry on bob.
    assert [message.id for message in bobs] == ["4", "6", "7"]
    by_type = {"after": "0", "type": POSTED}
    async with api.client.stream("GET", PATH, params=by_type) as response:
        posted = await next_events(sse_messages(response), 4)
    assert [message.id for message in posted] == ["5", "6", "7", "8"]
    both: list[tuple[str, str | int | float | bool | None]] = [
        ("after", "0"),
        ("type", POSTED),
        ("account", "alice"),
        ("account", "nobody"),
    ]
    async with api.client.stream("GET", PATH, params=both) as response:
        alices = await next_events(sse_messages(response), 3)
    assert [message.id for message in alices] == ["5", "7", "8"]


async def test_an_idle_stream_sends_heartbeat_comments(api: RestApi) -> None:
    await Books(api.client).open()
    async with api.client.stream("GET", PATH) as response:
        messages = sse_messages(response)
        await anext(messages)  # the retry hint
        heartbeat: SseMessage = await anext(messages)
    assert heartbeat.comments == ["ping"]
    assert heartbeat.event is None


@pytest.mark.parametrize(
    ("query", "headers", "field"),
    [
        ({"type": "ledgerd.v1.Nothing"}, {}, "types"),
        ({"account": ""}, {}, "accounts"),
        ({"after": "-1"}, {}, "after"),
        ({"after": "1e3"}, {}, "after"),
        ({"after": "1", "account": "a"}, {"last-event-id": "x"}, "Last-Event-ID"),
        ({"from": "1"}, {}, "from"),
    ],
)
async def test_a_bad_request_is_a_400_naming_the_field(
    api: RestApi, query: dict[str, str], headers: dict[str, str], field: str
) -> None:
    await Books(api.client).open()
    answer = await api.client.get(PATH, params=query, headers=headers)
    body = problem(answer, 400, "VALIDATION_FAILED")
    assert body["details"]["field"] == field


async def test_a_missing_ledger_a_position_ahead_and_a_wrong_method_are_refused(
    api: RestApi,
) -> None:
    missing = await api.client.get("/v1/ledgers/nowhere/events:stream")
    assert problem(missing, 404, "LEDGER_NOT_FOUND")["details"] == {"ledger": "nowhere"}
    await Books(api.client).open()
    ahead = await api.client.get(PATH, params={"after": "99"})
    assert problem(ahead, 400, "POSITION_AHEAD")["details"]["last_sequence"] == "4"
    posted = await api.client.post(PATH)
    problem(posted, 405, "METHOD_NOT_ALLOWED")
    assert posted.headers["allow"] == "GET"


async def test_the_subscription_ends_when_the_client_leaves(api: RestApi) -> None:
    await Books(api.client).open()
    hub = await api.app.container.get(StreamHub)
    async with (
        httpx.AsyncClient(base_url=api.base_url, timeout=READ_TIMEOUT_S) as leaving,
        leaving.stream("GET", PATH) as response,
    ):
        await anext(sse_messages(response))
        feed = hub.feed(LEDGER)
        assert feed is not None
        assert len(feed.members) == 1
    # The server notices the disconnection and closes the subscription (its feed with it).
    for _ in range(100):
        if hub.feed(LEDGER) is None:
            break
        await asyncio.sleep(0.05)
    assert hub.feed(LEDGER) is None
