"""The outage proxy the broker tests rely on: passes bytes, cuts, comes back on its port."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.tcp_proxy import TcpProxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _round_trip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await reader.readexactly(len(payload))
    finally:
        writer.close()


async def test_the_proxy_passes_cuts_and_restores() -> None:
    echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
    proxy = TcpProxy("127.0.0.1", echo.sockets[0].getsockname()[1])
    await proxy.start()
    try:
        assert await _round_trip(proxy.port, b"hello") == b"hello"

        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        async with proxy.outage():
            # The open connection is dropped and a new one is refused.
            assert await reader.read(10) == b""
            with pytest.raises(ConnectionRefusedError):
                await _round_trip(proxy.port, b"x")
        writer.close()

        assert await _round_trip(proxy.port, b"again") == b"again"
    finally:
        await proxy.aclose()
        echo.close()
        await echo.wait_closed()
