"""How a request's length is read, checked over a raw socket against the served application.

A request with both ``Content-Length`` and ``Transfer-Encoding`` can be read two ways: a proxy
in front that believes one header and the server that believes the other disagree on where the
request ends, and the rest of the body becomes a request of its own ("request smuggling").
RFC 9112, 6.1: the server may refuse such a request, and must close the connection after
answering it. ledgerd refuses it with the API's problem body, and closes.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.e2e.rest.support import RestApi, problem

READ_TIMEOUT_S = 10.0
SMUGGLED = b"GET /v1/ledgers/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def _exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` and read until the server closes the connection (bounded in time)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(READ_TIMEOUT_S):
            return await reader.read()  # b"" only once the server has closed its side
    finally:
        writer.close()
        await writer.wait_closed()


def _parse(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def _with_both_lengths(method: str, path: str, body: bytes) -> bytes:
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(chunked)}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    return head.encode() + chunked


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("POST", "/v1/ledgers", b'{"id": "smuggled"}', id="an-api-call"),
        pytest.param("GET", "/healthz", b"", id="a-page"),
    ],
)
async def test_both_lengths_are_refused_and_the_connection_closed(
    local_api: RestApi, method: str, path: str, body: bytes
) -> None:
    # A second request right behind the first, on the same connection: it must go unanswered.
    response = await _exchange(
        local_api.http_port, _with_both_lengths(method, path, body) + SMUGGLED
    )

    status, headers, content = _parse(response)
    assert status == 400, response
    assert headers["connection"] == "close"
    assert headers["content-type"].startswith("application/json")
    document = json.loads(content[: int(headers["content-length"])])
    assert document["code"] == "VALIDATION_FAILED"
    assert "Transfer-Encoding" in document["message"]
    assert response.count(b"HTTP/1.1 ") == 1, response  # the server read no further
    # Nothing the request asked for happened.
    missing = await local_api.client.get("/v1/ledgers/smuggled")
    problem(missing, 404, "LEDGER_NOT_FOUND")


async def test_a_chunked_request_alone_is_served(local_api: RestApi) -> None:
    body = b'{"id": "chunked"}'
    request = (
        b"POST /v1/ledgers HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    )

    status, _, _ = _parse(await _exchange(local_api.http_port, request))

    assert status == 200
    assert (await local_api.client.get("/v1/ledgers/chunked")).status_code == 200
