"""The HTTP server's connection limits (platform/http_guard.py) under uvicorn, on real sockets.

A small ASGI app stands in for ledgerd's: it answers at once, reads a body, or waits for the
test. The timeouts are short so that the tests are quick; a test waits for what the server does
with a bound (``WAIT_S``) far beyond them, so a slow machine cannot fail it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import resource
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from ledgerd.main.http_server import http_room, start_http_server, within_file_limit
from ledgerd.platform.http_guard import ConnectionLimits

HEADER_TIMEOUT_S = 0.3
BODY_TIMEOUT_S = 0.3
IDLE_TIMEOUT_S = 3
LIMITS = ConnectionLimits(
    max_connections=8,
    header_timeout_s=HEADER_TIMEOUT_S,
    body_timeout_s=BODY_TIMEOUT_S,
    idle_timeout_s=IDLE_TIMEOUT_S,
    max_header_bytes=4096,
)
WAIT_S = 10.0  # an upper bound on any wait, not a measurement
HOST = b"Host: 127.0.0.1\r\n"

Message = MutableMapping[str, Any]


@dataclass
class App:
    """``/read`` reads the body then answers; ``/wait`` answers once ``go`` is set; else at once."""

    go: asyncio.Event = field(default_factory=asyncio.Event)
    # What the app saw of each request's body: "read" or "disconnect".
    bodies: list[str] = field(default_factory=list)

    async def __call__(
        self,
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["path"] == "/read":
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    self.bodies.append("disconnect")
                    return
                if not message.get("more_body", False):
                    self.bodies.append("read")
                    break
        elif scope["path"] == "/wait":
            await self.go.wait()
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})


@asynccontextmanager
async def served(limits: ConnectionLimits = LIMITS) -> AsyncIterator[tuple[App, int]]:
    app = App()
    server = await start_http_server(app, "127.0.0.1:0", 1.0, limits)
    try:
        yield app, server.port
    finally:
        app.go.set()
        await server.stop()


@asynccontextmanager
async def connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server writes until it closes the connection."""
    received = b""
    async with asyncio.timeout(WAIT_S):
        with contextlib.suppress(ConnectionResetError):
            while chunk := await reader.read(4096):
                received += chunk
    return received


async def answer(reader: asyncio.StreamReader) -> bytes:
    """One answer of the test app: its head, then its two-byte body."""
    async with asyncio.timeout(WAIT_S):
        head = await reader.readuntil(b"\r\n\r\n")
        return head + await reader.readexactly(2)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def problem_code(response: bytes) -> str:
    body = json.loads(response.partition(b"\r\n\r\n")[2])
    assert set(body) == {"code", "message", "details"}, body
    code = body["code"]
    assert isinstance(code, str)
    return code


async def test_a_head_that_keeps_trickling_is_cut_off_with_408() -> None:
    async with served() as (_, port), connection(port) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\n" + HOST)
        # Sending more does not buy time: the deadline runs from the connection opening.
        trickle = asyncio.ensure_future(_trickle(writer, b"x-slow: 1\r\n"))
        try:
            response = await until_closed(reader)
        finally:
            trickle.cancel()
    assert status_of(response) == 408, response
    assert b"connection: close" in response
    assert problem_code(response) == "REQUEST_TIMEOUT"


async def _trickle(writer: asyncio.StreamWriter, piece: bytes) -> None:
    while True:
        await asyncio.sleep(HEADER_TIMEOUT_S / 5)
        writer.write(piece)


async def test_a_connection_that_sends_nothing_is_closed_without_an_answer() -> None:
    async with served() as (_, port), connection(port) as (reader, _):
        assert await until_closed(reader) == b""


async def test_a_body_that_does_not_arrive_is_cut_off_with_408_and_the_app_told() -> None:
    async with served() as (app, port), connection(port) as (reader, writer):
        writer.write(b"POST /read HTTP/1.1\r\n" + HOST + b"content-length: 100\r\n\r\n{")
        trickle = asyncio.ensure_future(_trickle(writer, b" "))
        try:
            response = await until_closed(reader)
        finally:
            trickle.cancel()
        async with asyncio.timeout(WAIT_S):
            while True:
                if app.bodies:
                    break
                await asyncio.sleep(0.01)
    assert status_of(response) == 408, response
    assert problem_code(response) == "REQUEST_TIMEOUT"
    assert app.bodies == ["disconnect"]


async def test_a_body_nobody_reads_still_has_to_arrive_in_time() -> None:
    """The app answered without reading the body; the client may not keep the line by trickling."""
    async with served() as (app, port), connection(port) as (reader, writer):
        writer.write(b"POST / HTTP/1.1\r\n" + HOST + b"content-length: 100\r\n\r\n{")
        trickle = asyncio.ensure_future(_trickle(writer, b" "))
        try:
            first = await answer(reader)
            rest = await until_closed(reader)
        finally:
            trickle.cancel()
    assert status_of(first) == 200, first
    assert rest == b""  # already answered: closed without another
    assert app.bodies == []


async def test_timeouts_do_not_cover_the_time_the_app_takes() -> None:
    async with served() as (app, port), connection(port) as (reader, writer):
        writer.write(b"POST /wait HTTP/1.1\r\n" + HOST + b"content-length: 2\r\n\r\n{}")
        await asyncio.sleep(3 * max(HEADER_TIMEOUT_S, BODY_TIMEOUT_S))
        app.go.set()
        response = await answer(reader)
    assert status_of(response) == 200, response


async def test_a_kept_alive_connection_waits_the_idle_timeout_not_the_head_timeout() -> None:
    async with served() as (_, port), connection(port) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")
        assert status_of(await answer(reader)) == 200
        # Idle for longer than a head may take, shorter than the idle timeout.
        await asyncio.sleep(3 * HEADER_TIMEOUT_S)
        writer.write(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")
        assert status_of(await answer(reader)) == 200
        # Then idle for good: closed, without an answer.
        assert await until_closed(reader) == b""


async def test_pipelined_requests_are_all_answered() -> None:
    async with served() as (_, port), connection(port) as (reader, writer):
        request = b"POST /read HTTP/1.1\r\n" + HOST + b"content-length: 2\r\n\r\n{}"
        writer.write(request * 3)
        statuses = [status_of(await answer(reader)) for _ in range(3)]
    assert statuses == [200, 200, 200]


async def test_a_head_over_the_size_limit_is_refused() -> None:
    async with served() as (_, port), connection(port) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\n" + HOST + b"x-big: " + b"a" * LIMITS.max_header_bytes)
        response = await until_closed(reader)
    assert status_of(response) == 400, response


async def test_a_connection_over_the_cap_is_answered_503_at_once() -> None:
    limits = ConnectionLimits(
        max_connections=2,
        header_timeout_s=WAIT_S * 10,  # the connections filling the cap stay
        body_timeout_s=BODY_TIMEOUT_S,
        idle_timeout_s=IDLE_TIMEOUT_S,
        max_header_bytes=4096,
    )
    async with served(limits) as (_, port):
        async with connection(port) as (first, first_writer), connection(port) as (_, writer):
            # Both taken by the server (an answer on the first; the second follows it in order).
            first_writer.write(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")
            assert status_of(await answer(first)) == 200
            async with connection(port) as (reader, extra):
                extra.write(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")
                refused = await until_closed(reader)
            writer.write(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")
        # With room again, the next connection is served.
        async with connection(port) as (reader, writer):
            writer.write(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")
            served_again = await answer(reader)
    assert status_of(refused) == 503, refused
    assert b"retry-after: 1" in refused
    assert problem_code(refused) == "TOO_MANY_CONNECTIONS"
    assert status_of(served_again) == 200


FEW_FILES = 400


@pytest.fixture
def file_limit_of_400() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < FEW_FILES:
        pytest.skip(f"the hard file limit ({hard}) is below {FEW_FILES}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (FEW_FILES, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize(
    ("files", "connections"),
    [
        (400, 300),  # a quarter kept back while a quarter is less than the reserve
        (1024, 768),
        (4096, 3072),
        (4100, 3076),  # the two meet at 4,096: a fixed reserve of 1,024 files beyond
        (20_000, 18_976),  # these machines' hard limit
        (1_048_576, 1_047_552),
    ],
)
def test_http_connections_may_use_all_files_but_a_reserve(files: int, connections: int) -> None:
    """What the rest of the process needs does not grow with the file limit."""
    assert http_room(files) == connections


@pytest.mark.usefixtures("file_limit_of_400")
def test_the_cap_leaves_a_quarter_of_a_small_open_file_limit_to_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past the file limit accepting fails for everyone, gRPC too: the cap stays below it."""
    with caplog.at_level(logging.WARNING, logger="ledgerd.main.http_server"):
        assert within_file_limit(LIMITS) == LIMITS  # 8 connections: room enough
        lowered = within_file_limit(dataclasses.replace(LIMITS, max_connections=2048))
    assert lowered == dataclasses.replace(LIMITS, max_connections=300)
    assert [record.getMessage() for record in caplog.records] == [
        (
            "LEDGERD_HTTP_MAX_CONNECTIONS=2048: this process may open only 400 files; "
            "HTTP connections are capped at 300"
        )
    ]
