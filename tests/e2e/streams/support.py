"""What the stream tests share: the servers, an SSE reader, a WebSocket reader, the books.

The servers are the REST end-to-end tests' (``serve_rest``: the real composition root under
uvicorn on a free port, in the test's loop, only the clock replaced), which serve the contexts'
own endpoints, the streams among them. Clients are real: httpx streaming for Server-Sent Events,
the ``websockets`` client for WebSocket.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from ledgerd.kernel.principal import ALL_LEDGERS, LedgerGrant, Principal
from ledgerd.platform.auth.access_tokens import AccessTokenIssuer
from tests.e2e.rest.support import RestApi, pay, serve_rest

LEDGER = "shop"
# Short enough that a test sees a heartbeat at once, long enough not to crowd the events.
HEARTBEAT_S = 0.3
READ_TIMEOUT_S = 10.0
# Every scope there is (identity's names), for a token that may do everything.
EVERY_SCOPE = frozenset({"ledger.read", "ledger.write", "transfers.write", "ledgers.admin"})


@dataclass
class SseMessage:
    """One message of an event stream: its fields, and the comment lines before it."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    retry: str | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> dict[str, Any]:
        assert self.data is not None, self
        document = json.loads(self.data)
        assert isinstance(document, dict)
        return document


async def sse_messages(response: httpx.Response) -> AsyncIterator[SseMessage]:
    """The messages of a ``text/event-stream`` answer as they come (a comment alone is one)."""
    message = SseMessage()
    async for line in response.aiter_lines():
        if line == "":
            yield message
            message = SseMessage()
            continue
        if line.startswith(":"):
            message.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        assert name in {"id", "event", "data", "retry"}, line
        assert getattr(message, name) is None, f"{name} twice in one message"
        setattr(message, name, value)


async def next_events(messages: AsyncIterator[SseMessage], count: int) -> list[SseMessage]:
    """The next ``count`` events, skipping heartbeats and the retry hint."""
    events: list[SseMessage] = []
    while len(events) < count:
        message = await anext(messages)
        if message.event is not None:
            events.append(message)
    return events


async def ws_json(socket: ClientConnection) -> dict[str, Any]:
    text = await socket.recv(decode=True)
    assert isinstance(text, str)
    document = json.loads(text)
    assert isinstance(document, dict)
    return document


async def ws_events(socket: ClientConnection, count: int) -> list[dict[str, Any]]:
    """The next ``count`` messages, which must be events."""
    events = [await ws_json(socket) for _ in range(count)]
    assert all(event["type"] == "event" for event in events), events
    return events


class Books:
    """The ledger the tests watch: a bank, alice and bob, and payments between them."""

    def __init__(self, client: httpx.AsyncClient, headers: Mapping[str, str] | None = None) -> None:
        self.client = client
        self.headers = dict(headers or {})
        self.path = f"/v1/ledgers/{LEDGER}"
        self.paid = 0

    async def open(self) -> None:
        """The ledger and its three accounts: events 1 (LedgerCreated) to 4."""
        made = await self.client.post("/v1/ledgers", json={"id": LEDGER}, headers=self.headers)
        assert made.status_code == 200, made.text
        for account in ("bank", "alice", "bob"):
            opened = await self.client.post(
                f"{self.path}/accounts",
                json={"id": account, "asset": "USD/2"},
                headers=self.headers,
            )
            assert opened.status_code == 200, opened.text

    async def pay(self, debit: str = "bank", credit: str = "alice", amount: int = 100) -> None:
        self.paid += 1
        posted = await self.client.post(
            f"{self.path}/transfers",
            json=pay(f"payment-{self.paid}", debit, credit, amount),
            headers=self.headers,
        )
        assert posted.status_code == 200, posted.text


@asynccontextmanager
async def serve_streams(
    database_url: str, settings: Mapping[str, Any] | None = None
) -> AsyncIterator[RestApi]:
    """The API with a short heartbeat, on a fresh database."""
    async with serve_rest(
        database_url, settings={"stream_heartbeat_seconds": HEARTBEAT_S, **(settings or {})}
    ) as api:
        yield api


async def token(
    api: RestApi,
    *,
    subject: str = "watcher",
    scopes: frozenset[str] = EVERY_SCOPE,
    ledgers: LedgerGrant = ALL_LEDGERS,
) -> str:
    """An access token the server issues (with its clock: it expires with that clock)."""
    issuer = await api.app.container.get(AccessTokenIssuer)
    return issuer.issue(Principal(subject=subject, scopes=scopes, ledgers=ledgers)).token


def bearer(access_token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {access_token}"}


def ws_url(api: RestApi, query: str = "") -> str:
    return f"ws://127.0.0.1:{api.http_port}/v1/ledgers/{LEDGER}/events:ws{query}"
