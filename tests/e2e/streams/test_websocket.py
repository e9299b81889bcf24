"""WebSocket over a real socket: subscriptions with their own filters, resume, bad messages."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ledgerd.main.http_server import WS_MAX_MESSAGE_BYTES
from tests.e2e.rest.support import RestApi
from tests.e2e.streams.support import Books, serve_streams, ws_events, ws_json, ws_url

POSTED = "ledgerd.v1.TransferPosted"


@pytest.fixture
async def api(migrated_sqlite_url: str) -> AsyncIterator[RestApi]:
    async with serve_streams(migrated_sqlite_url) as served:
        books = Books(served.client)
        await books.open()
        yield served


def subscribe(name: str, **fields: object) -> str:
    return json.dumps({"type": "subscribe", "id": name, **fields})


async def test_two_subscriptions_with_their_own_filters_and_unsubscribing_one(
    api: RestApi,
) -> None:
    books = Books(api.client)
    async with connect(ws_url(api)) as socket:
        await socket.send(subscribe("bobs", accounts=["bob"]))
        assert await ws_json(socket) == {"type": "subscribed", "subscription": "bobs", "after": 4}
        await socket.send(subscribe("posted", types=[POSTED], after=0))
        assert (await ws_json(socket))["subscription"] == "posted"
        await books.pay(credit="alice")  # 5: posted only
        await books.pay(credit="bob")  # 6: both
        received = await ws_events(socket, 3)
        assert sorted((event["subscription"], event["sequence"]) for event in received) == [
            ("bobs", 6),
            ("posted", 5),
            ("posted", 6),
        ]
        for event in received:
            assert event["event"]["type"] == POSTED
            assert int(event["event"]["sequence"]) == event["sequence"]
            assert event["event"]["datacontenttype"] == "application/json"
        await socket.send(json.dumps({"type": "unsubscribe", "id": "posted"}))
        assert await ws_json(socket) == {
            "type": "unsubscribed",
            "subscription": "posted",
            "position": 6,
        }
        await books.pay(credit="alice")  # 7: nobody's now
        await books.pay(debit="bob", credit="alice")  # 8: bobs
        (event,) = await ws_events(socket, 1)
        assert (event["subscription"], event["sequence"]) == ("bobs", 8)


async def test_a_subscription_resumes_after_a_position(api: RestApi) -> None:
    books = Books(api.client)
    for _ in range(3):
        await books.pay()  # 5, 6, 7
    async with connect(ws_url(api)) as socket:
        await socket.send(subscribe("again", after=5))
        assert (await ws_json(socket))["after"] == 5
        caught_up = await ws_events(socket, 2)
        await books.pay()
        live = await ws_events(socket, 1)
    assert [event["sequence"] for event in (*caught_up, *live)] == [6, 7, 8]


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "subscribe", "id": "s", "types": ["nope"]}, "types"),
        ({"type": "subscribe", "id": "s", "accounts": "bob"}, "accounts"),
        ({"type": "subscribe", "id": "s", "after": -1}, "after"),
        ({"type": "subscribe", "id": "s", "after": True}, "after"),
        ({"type": "subscribe", "id": "", "after": 0}, "id"),
        ({"type": "subscribe", "id": "s", "colour": "red"}, "colour"),
        ({"type": "unsubscribe", "id": "never"}, "id"),
    ],
)
async def test_a_refused_message_is_an_error_and_the_socket_stays_open(
    api: RestApi, message: dict[str, object], field: str
) -> None:
    async with connect(ws_url(api)) as socket:
        await socket.send(json.dumps(message))
        error = await ws_json(socket)
        assert error["type"] == "error"
        assert error["code"] == "VALIDATION_FAILED"
        assert error["details"]["field"] == field, error
        await socket.send(subscribe("fine"))
        assert (await ws_json(socket))["type"] == "subscribed"


async def test_a_position_ahead_and_a_duplicate_id_are_refused_by_subscription(
    api: RestApi,
) -> None:
    async with connect(ws_url(api)) as socket:
        await socket.send(subscribe("far", after=99))
        ahead = await ws_json(socket)
        assert (ahead["subscription"], ahead["code"]) == ("far", "POSITION_AHEAD")
        await socket.send(subscribe("s1"))
        await ws_json(socket)
        await socket.send(subscribe("s1"))
        twice = await ws_json(socket)
        assert (twice["subscription"], twice["code"]) == ("s1", "VALIDATION_FAILED")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x00binary", 1003),
        ("not json", 1007),
        ("[1, 2]", 1007),
        (json.dumps({"type": "shout"}), 1003),
        ("x" * (WS_MAX_MESSAGE_BYTES + 1), 1009),
    ],
)
async def test_a_bad_message_closes_the_socket_with_a_code_that_says_why(
    api: RestApi, frame: str | bytes, code: int
) -> None:
    async with connect(ws_url(api)) as socket:
        await socket.send(subscribe("s1", after=2))
        await ws_json(socket)
        await ws_events(socket, 2)
        await socket.send(frame)
        if code != 1009:  # a message too big is closed by the protocol, before the app reads it
            closing = await ws_json(socket)
            assert closing["type"] == "closing"
            assert closing["positions"] == {"s1": 4}
        with pytest.raises(ConnectionClosed):
            await socket.recv()
    assert socket.close_code == code


async def test_a_missing_ledger_is_refused_with_its_code_then_1008(api: RestApi) -> None:
    url = ws_url(api).replace("/shop/", "/nowhere/")
    async with connect(url) as socket:
        refusal = await ws_json(socket)
        with pytest.raises(ConnectionClosed):
            await socket.recv()
    assert refusal == {
        "type": "error",
        "subscription": None,
        "code": "LEDGER_NOT_FOUND",
        "message": refusal["message"],
        "details": {"ledger": "nowhere"},
    }
    assert socket.close_code == 1008
    assert (socket.close_reason or "").startswith("LEDGER_NOT_FOUND: ")


async def test_plain_http_on_the_websocket_path_is_told_to_upgrade(api: RestApi) -> None:
    answer = await api.client.get("/v1/ledgers/shop/events:ws")
    assert answer.status_code == 426
    assert answer.json()["code"] == "UPGRADE_REQUIRED"
    assert answer.headers["upgrade"] == "websocket"


async def test_a_websocket_to_a_path_without_an_endpoint_is_a_404_problem(api: RestApi) -> None:
    url = f"ws://127.0.0.1:{api.http_port}/v1/ledgers/shop/accounts"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url):
            pass
    assert refused.value.response.status_code == 404
    assert json.loads(refused.value.response.body)["code"] == "ROUTE_NOT_FOUND"
