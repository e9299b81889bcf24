"""The lean HTTP/1.1 client against a scripted server: framing, keep-alive, failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from ledgerd.loadgen.http1 import Http1Connection, Http1Error

Answer = Callable[[bytes], bytes]


@asynccontextmanager
async def scripted(
    answers: list[Answer], *, then_hang: bool = True
) -> AsyncIterator[tuple[int, list[bytes], list[int]]]:
    """A server answering the n-th request (on any connection) with ``answers[n](request)``.

    Out of answers, it hangs (reads until the client goes) or, with ``then_hang=False``,
    closes the connection.
    """
    requests: list[bytes] = []
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                requests.append(request)
                if not answers:
                    if then_hang:
                        await reader.read()
                    return
                writer.write(answers.pop(0)(request))
                await writer.drain()
                if not answers and not then_hang:
                    return
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, requests, connections
    finally:
        server.close()
        await server.wait_closed()


def fixed(body: bytes, status: str = "200 OK", extra: bytes = b"") -> Answer:
    return lambda _request: (
        f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n".encode() + extra + b"\r\n" + body
    )


def chunked(*chunks: bytes) -> Answer:
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)
    return lambda _request: (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        + encoded
        + b"0\r\nx-trailer: 1\r\n\r\n"
    )


async def test_requests_share_one_connection_whatever_the_framing() -> None:
    answers = [fixed(b'{"id": "1"}'), chunked(b'{"id"', b': "2"}'), fixed(b"", "404 Not Found")]
    async with scripted(answers) as (port, requests, connections):
        client = Http1Connection("127.0.0.1", port, timeout_s=5)
        assert await client.request("POST", "/a", b'{"x": 1}') == (200, b'{"id": "1"}')
        assert await client.request("GET", "/b") == (200, b'{"id": "2"}')
        assert await client.request("GET", "/c") == (404, b"")
        await client.close()
    assert len(connections) == 1
    assert requests[0].startswith(b"POST /a HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"Content-Length: 8\r\n" in requests[0]
    assert requests[0].endswith(b'\r\n\r\n{"x": 1}')
    assert b"Content-Length" not in requests[1]


async def test_a_connection_the_server_closes_is_opened_again() -> None:
    answers = [fixed(b"a", extra=b"connection: close\r\n"), fixed(b"b")]
    async with scripted(answers) as (port, _requests, connections):
        client = Http1Connection("127.0.0.1", port, timeout_s=5)
        assert await client.request("GET", "/") == (200, b"a")
        assert await client.request("GET", "/") == (200, b"b")
        await client.close()
    assert len(connections) == 2


async def test_failures_become_errors_and_the_next_request_starts_afresh() -> None:
    answers = [lambda _request: b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"]
    async with scripted(answers, then_hang=False) as (port, _requests, _connections):
        client = Http1Connection("127.0.0.1", port, timeout_s=5)
        with pytest.raises(Http1Error) as caught:
            await client.request("GET", "/")
    assert caught.value.kind == "IncompleteReadError"
    with pytest.raises(Http1Error) as refused:
        await client.request("GET", "/")  # the server is gone: reconnecting fails
    assert refused.value.kind == "ConnectionRefusedError"


async def test_a_silent_server_times_out() -> None:
    async with scripted([]) as (port, _requests, _connections):
        client = Http1Connection("127.0.0.1", port, timeout_s=0.2)
        with pytest.raises(Http1Error) as caught:
            await client.request("GET", "/")
        await client.close()
    assert caught.value.kind == "Timeout"
