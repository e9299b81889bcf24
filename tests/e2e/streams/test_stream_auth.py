"""Who may watch: bearer tokens through the call pipeline, stream tickets, expiry mid-stream.

The server requires authentication (``LEDGERD_AUTH=required``); tokens are issued by its own
issuer on its clock, which the tests move to expire them without waiting.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ledgerd.streaming.adapters.tables import tickets
from tests.e2e.rest.support import RestApi, problem
from tests.e2e.streams.support import (
    LEDGER,
    Books,
    bearer,
    next_events,
    serve_streams,
    sse_messages,
    token,
    ws_events,
    ws_json,
    ws_url,
)

PATH = f"/v1/ledgers/{LEDGER}/events:stream"
TICKETS = f"/v1/ledgers/{LEDGER}/events:ticket"
SETTINGS = {"auth": "required", "revocation_cache_seconds": 0}
TOKEN_LIFETIME = timedelta(seconds=900)  # the default LEDGERD_ACCESS_TOKEN_LIFETIME_SECONDS


@pytest.fixture
async def api(migrated_sqlite_url: str) -> AsyncIterator[RestApi]:
    async with serve_streams(migrated_sqlite_url, SETTINGS) as served:
        await Books(served.client, bearer(await token(served))).open()
        yield served


async def ticket_for(api: RestApi, access_token: str, ledger: str = LEDGER) -> str:
    answer = await api.client.post(
        f"/v1/ledgers/{ledger}/events:ticket", json={}, headers=bearer(access_token)
    )
    assert answer.status_code == 200, answer.text
    issued: str = answer.json()["ticket"]
    return issued


async def test_no_token_a_token_without_the_scope_or_the_ledger_are_refused_as_rest_does(
    api: RestApi,
) -> None:
    anonymous = await api.client.get(PATH)
    problem(anonymous, 401, "UNAUTHENTICATED")
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="ledgerd"'
    unscoped = await token(api, scopes=frozenset({"ledger.write"}))
    refused = await api.client.get(PATH, headers=bearer(unscoped))
    problem(refused, 403, "INSUFFICIENT_SCOPE")
    assert 'scope="ledger.read"' in refused.headers["www-authenticate"]

    elsewhere = await token(api, ledgers=frozenset({"elsewhere"}))
    hidden = await api.client.get(PATH, headers=bearer(elsewhere))
    # Exactly what the REST API answers that token for the ledger, and for a missing one.
    rest = await api.client.get(f"/v1/ledgers/{LEDGER}", headers=bearer(elsewhere))
    assert (hidden.status_code, hidden.json()) == (rest.status_code, rest.json())
    assert problem(hidden, 404, "LEDGER_NOT_FOUND")["details"] == {"ledger": LEDGER}

    for headers in ({}, bearer(elsewhere)):
        async with connect(ws_url(api), additional_headers=headers) as socket:
            refusal = await ws_json(socket)
            with pytest.raises(ConnectionClosed):
                await socket.recv()
        assert refusal["code"] in {"UNAUTHENTICATED", "LEDGER_NOT_FOUND"}
        assert socket.close_code == 1008
        assert (socket.close_reason or "").startswith(refusal["code"])


async def test_a_granted_token_watches_over_both_transports(api: RestApi) -> None:
    reader = await token(api, scopes=frozenset({"ledger.read"}), ledgers=frozenset({LEDGER}))
    params = {"after": "3"}
    async with api.client.stream("GET", PATH, params=params, headers=bearer(reader)) as response:
        (event,) = await next_events(sse_messages(response), 1)
    assert event.id == "4"
    async with connect(ws_url(api), additional_headers=bearer(reader)) as socket:
        await socket.send('{"type": "subscribe", "id": "s", "after": 3}')
        await ws_json(socket)
        (message,) = await ws_events(socket, 1)
    assert message["sequence"] == 4


async def test_a_ticket_opens_one_stream_once_and_is_stored_only_as_its_digest(
    migrated_database_url: str,
) -> None:
    async with serve_streams(migrated_database_url, SETTINGS) as api:
        admin = await token(api)
        await Books(api.client, bearer(admin)).open()
        reader = await token(api, scopes=frozenset({"ledger.read"}), ledgers=frozenset({LEDGER}))
        answer = await api.client.post(TICKETS, json={}, headers=bearer(reader))
        assert answer.status_code == 200, answer.text
        issued = answer.json()
        assert re.fullmatch(r"[0-9a-f]{64}", issued["ticket"])
        assert issued["expires_at"] == "2030-01-02T03:04:35.123456Z"  # the clock's now + 30 s
        async with api.engine.connect() as connection:
            stored = (await connection.execute(select(tickets))).mappings().one()
        assert stored["digest"] == hashlib.sha256(issued["ticket"].encode()).hexdigest()
        assert issued["ticket"] not in {str(value) for value in stored.values()}
        assert (stored["subject"], stored["ledger"]) == ("watcher", LEDGER)

        # Presented twice at once: one stream opens, the other is refused.
        params = {"after": "3", "ticket": issued["ticket"]}

        async def present() -> tuple[int, str | None]:
            async with (
                httpx.AsyncClient(base_url=api.base_url, timeout=10) as client,
                client.stream("GET", PATH, params=params) as response,
            ):
                if response.status_code != 200:
                    await response.aread()
                    return response.status_code, response.json()["code"]
                (event,) = await next_events(sse_messages(response), 1)
                return 200, event.id

        answers = sorted(await asyncio.gather(present(), present()), key=str)
        assert answers == [(200, "4"), (401, "UNAUTHENTICATED")]
        again = await api.client.get(PATH, params=params)
        problem(again, 401, "UNAUTHENTICATED")
        async with api.engine.connect() as connection:
            assert (await connection.execute(select(tickets))).all() == []


async def test_a_ticket_expires_is_for_its_ledger_and_is_the_only_credential(
    api: RestApi,
) -> None:
    admin = await token(api)
    late = await ticket_for(api, admin)
    api.clock.advance(timedelta(seconds=31))
    problem(await api.client.get(PATH, params={"ticket": late}), 401, "UNAUTHENTICATED")

    other = await api.client.post("/v1/ledgers", json={"id": "other"}, headers=bearer(admin))
    assert other.status_code == 200
    for_other = await ticket_for(api, admin, "other")
    # A ticket opens its own ledger only, answered as a ledger its holder may not see.
    misused = await api.client.get(PATH, params={"ticket": for_other})
    problem(misused, 404, "LEDGER_NOT_FOUND")

    both = await ticket_for(api, admin)
    twice = await api.client.get(PATH, params={"ticket": both}, headers=bearer(admin))
    problem(twice, 401, "UNAUTHENTICATED")
    problem(await api.client.get(PATH, params={"ticket": "f" * 64}), 401, "UNAUTHENTICATED")

    # The ticket refused alongside a token is still good on its own, once, over WebSocket too.
    async with connect(ws_url(api, f"?ticket={both}")) as socket:
        await socket.send('{"type": "subscribe", "id": "s", "after": 3}')
        assert (await ws_json(socket))["type"] == "subscribed"
    async with connect(ws_url(api, f"?ticket={both}")) as socket:
        refusal = await ws_json(socket)
        with pytest.raises(ConnectionClosed):
            await socket.recv()
    assert (refusal["code"], socket.close_code) == ("UNAUTHENTICATED", 1008)


async def test_streams_end_when_the_token_expires_with_the_position_to_resume(
    api: RestApi,
) -> None:
    admin = await token(api)
    sse_ticket = await ticket_for(api, admin)  # a ticket's stream ends with its token
    sse_params = {"after": "2", "ticket": sse_ticket}
    async with (
        api.client.stream("GET", PATH, params=sse_params) as response,
        connect(ws_url(api), additional_headers=bearer(admin)) as socket,
    ):
        messages = sse_messages(response)
        await next_events(messages, 2)
        await socket.send('{"type": "subscribe", "id": "s", "after": 1}')
        await ws_json(socket)
        await ws_events(socket, 3)
        api.clock.advance(TOKEN_LIFETIME)
        ended = (await next_events(messages, 1))[0]
        closing = await ws_json(socket)
        with pytest.raises(ConnectionClosed):
            await socket.recv()
    assert ended.event == "error"
    assert ended.id is None  # Last-Event-ID stays the last event's
    assert ended.json["code"] == "UNAUTHENTICATED"
    assert ended.json["details"] == {"reason": "expired", "position": "4"}
    assert closing["type"] == "closing"
    assert closing["code"] == "UNAUTHENTICATED"
    assert closing["positions"] == {"s": 4}
    assert socket.close_code == 1008
