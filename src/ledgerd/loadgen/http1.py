"""A lean HTTP/1.1 keep-alive connection on asyncio streams, for the load's hot path.

Measured on the 2-core machine this project runs on, httpx spends about 1.1 ms of CPU per
request and this about 0.15 ms: driving REST with httpx, the load generator would be the
bottleneck (it shares the cores with the server), not the server under test. So the timed
requests go through this — one connection per client, requests one after another, bodies
framed by Content-Length or chunked encoding — while the set-up and the invariant checks,
where speed does not matter, use httpx. ``--rest-client httpx`` times httpx instead.
"""

from __future__ import annotations

import asyncio
import contextlib

from ledgerd.loadgen.credentials import BearerHeader

_HEAD_END = b"\r\n\r\n"
_CRLF = b"\r\n"
_MAX_HEAD = 64 * 1024


class Http1Error(Exception):
    """The connection failed; ``kind`` names how (it becomes the CLIENT_* error code)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class Http1Connection:
    def __init__(
        self, host: str, port: int, timeout_s: float, authorization: BearerHeader | None = None
    ) -> None:
        self._host = host
        self._authorization = authorization or BearerHeader()
        self._port = port
        self._timeout_s = timeout_s
        self._host_header = f"Host: {host}:{port}\r\n".encode()
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def connect(self) -> None:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self._host, self._port)

    async def close(self) -> None:
        streams, self._streams = self._streams, None
        if streams is not None:
            streams[1].close()
            with contextlib.suppress(OSError):  # reset by the peer: closed all the same
                await streams[1].wait_closed()

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """Send one request and read its whole answer: (status, body)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._exchange(method, path, body)
        except TimeoutError:
            await self.close()
            raise Http1Error(
                "Timeout", f"{method} {path}: no answer in {self._timeout_s} s"
            ) from None
        except (
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
        ) as error:
            await self.close()  # the connection's state is unknown: start afresh next time
            raise Http1Error(type(error).__name__, f"{method} {path}: {error}") from error

    async def _exchange(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        await self.connect()
        assert self._streams is not None  # noqa: S101 - connect() just made them
        reader, writer = self._streams
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self._host_header
        bearer = self._authorization.value  # read per request: it is renewed in place
        if bearer is not None:
            head += b"Authorization: " + bearer.encode("ascii") + _CRLF
        if body is not None:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        writer.write(head + _CRLF + (body or b""))
        response = await reader.readuntil(_HEAD_END)
        if len(response) > _MAX_HEAD:
            msg = "response head too large"
            raise ValueError(msg)
        lines = response[: -len(_HEAD_END)].split(_CRLF)
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            content = await _read_chunked(reader)
        else:
            content = await reader.readexactly(int(headers.get(b"content-length", b"0")))
        if headers.get(b"connection", b"").lower() == b"close":
            await self.close()
        return status, content


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(_CRLF)
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            while await reader.readuntil(_CRLF) != _CRLF:  # trailers, if any, then a blank line
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(len(_CRLF))
