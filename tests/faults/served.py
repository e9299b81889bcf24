"""``ledgerd serve`` as a process a fault test can SIGKILL and start again, on the same ports.

Each start is tests/e2e/grpc/test_serve.py's ``ledgerd_serve`` (the console script, configured
by environment alone, killed on the way out if a test leaves it running). Here the gRPC and
REST ports are picked once and kept, so a client carries on against the same address after a
restart, as it would behind a supervisor, and the process's output is read all along: a
server that logs into a pipe nobody reads stops once the pipe is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

from tests.e2e.grpc.test_serve import STOPPED, Served, ledgerd_serve, says
from tests.network import free_port

REST_LISTENING = re.compile(r"^REST\s+http://127\.0\.0\.1:(\d+)/")
# Upper bound for a process to end once told to; not a measurement.
EXIT_WAIT_S = 30.0


@dataclass
class Life:
    """One run of the process: when it was started, when it listened, how it ended."""

    spawned_at: float  # time.monotonic()
    listening_at: float = 0.0
    exit_code: int | None = None
    output: list[str] = field(default_factory=list)

    @property
    def start_up_s(self) -> float:
        return self.listening_at - self.spawned_at


class KillableServe:
    """``ledgerd serve`` on ``database_url`` that ``kill()`` ends with SIGKILL, mid-anything.

    Use as an async context manager: whatever still runs on the way out is killed.
    """

    def __init__(self, database_url: str, **settings: str) -> None:
        self.database_url = database_url
        self.grpc_port = free_port()
        self.http_port = free_port()
        self._settings = {
            "grpc_address": f"127.0.0.1:{self.grpc_port}",
            "http_address": f"127.0.0.1:{self.http_port}",
            **settings,
        }
        self.lives: list[Life] = []
        self._stack = contextlib.AsyncExitStack()
        self._served: Served | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log(self) -> str:
        """Every life's output, each headed by its number."""
        return "\n".join(
            f"--- life {number} ---\n" + "\n".join(life.output)
            for number, life in enumerate(self.lives, 1)
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._stack.aclose()  # kills what still runs
        if self._reader is not None:
            async with asyncio.timeout(EXIT_WAIT_S):
                await self._reader  # the output ends with the process

    async def start(self) -> Life:
        """Start a new life; return once both its gRPC and REST ports listen."""
        assert self._served is None, "already running"
        life = Life(spawned_at=time.monotonic())
        self.lives.append(life)
        served = await self._stack.enter_async_context(
            ledgerd_serve(self.database_url, **self._settings)
        )
        life.output = served.output  # the same list: what is read from now on lands there
        assert served.port == self.grpc_port, served.log
        line = await served.read_until(lambda text: REST_LISTENING.match(text) is not None)
        match = REST_LISTENING.match(line)
        assert match is not None
        assert int(match.group(1)) == self.http_port, served.log
        life.listening_at = time.monotonic()
        self._served = served
        self._reader = asyncio.create_task(_read_all(served))
        return life

    def kill_now(self) -> None:
        """SIGKILL, sent at once (callable from a callback); ``kill()`` then waits for the end."""
        assert self._served is not None, "not running"
        self._served.process.send_signal(signal.SIGKILL)

    async def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as when a machine or a container dies."""
        await self._end(signal.SIGKILL, lambda code: code == -signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM: calls in flight finish, the process says it stopped and exits 0."""
        await self._end(signal.SIGTERM, lambda code: code == 0)
        if self._settings.get("log_level", "INFO").upper() in {"DEBUG", "INFO"}:
            # "ledgerd stopped" is an INFO record: a quieter server exits 0 without it.
            assert says(self.lives[-1].output[-1], STOPPED), self.log

    async def _end(self, signum: signal.Signals, expected: Callable[[int], bool]) -> None:
        served, reader = self._served, self._reader
        assert served is not None, "not running"
        assert reader is not None
        self._served = self._reader = None
        served.process.send_signal(signum)
        async with asyncio.timeout(EXIT_WAIT_S):
            await reader
            code = await served.process.wait()
        self.lives[-1].exit_code = code
        assert expected(code), f"ledgerd exited with {code} after {signum.name}:\n{self.log}"


async def _read_all(served: Served) -> None:
    """Keep the process's output in ``served.output`` until it ends."""
    stream = served.process.stdout
    assert stream is not None
    while raw := await stream.readline():
        served.output.append(raw.decode().rstrip("\n"))
