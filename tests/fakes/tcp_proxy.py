"""A TCP proxy the tests can cut: a broker outage without stopping a shared broker.

The brokers and the database on the development and CI machines are shared and cannot be
stopped by a test; pointing an adapter at this proxy instead, the test cuts every
connection and refuses new ones (``cut()``), then lets them through again (``restore()``,
on the same port), which is what a client sees when the server goes away and comes back.
The server itself keeps everything it had accepted. ``stall()`` keeps the connections open
but forwards nothing, as a network that drops packets does, until ``resume()``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tests.network import free_port

_CHUNK = 65536


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.port = free_port()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Refuse new connections and drop every open one, as a dead broker would."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def restore(self) -> None:
        await self.start()

    def stall(self) -> None:
        """Forward nothing more, either way, on any connection (open ones stay open)."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    @contextlib.asynccontextmanager
    async def outage(self) -> AsyncIterator[None]:
        await self.cut()
        try:
            yield
        finally:
            await self.restore()

    async def aclose(self) -> None:
        await self.cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)  # so that a cut while connecting upstream drops it too
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        if self._server is None or writer not in self._writers:  # cut meanwhile
            writer.transport.abort()
            upstream_writer.transport.abort()
            return
        self._writers.add(upstream_writer)
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            pipe = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(_CHUNK):
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(sink)
            sink.transport.abort()
