"""``ledgerd serve`` as a user runs it: a real process, a real client, SIGTERM to stop it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2
from sqlalchemy import text

from ledgerd.main.migrations import MIGRATIONS
from ledgerd.platform.db.engine import create_engine
from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc

if TYPE_CHECKING:
    from ledgerd.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

LEDGERD = Path(sys.executable).parent / "ledgerd"
LISTENING = re.compile(r"^gRPC\s+127\.0\.0\.1:(\d+)\s")
STOPPING = "stopping: ending event streams, finishing calls in flight"
STOPPED = "ledgerd stopped"
# The one format of every log line, ledgerd's and its libraries' alike (LEDGERD_LOG_LEVEL).
LOG_RECORD = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) "
    r"(?P<logger>[\w.]+): (?P<message>.*)$"
)
# Upper bounds so that a hung process fails the test instead of stalling it; not measurements.
START_WAIT_S = 30.0
STOP_WAIT_S = 30.0
CALL_TIMEOUT_S = 60.0
LOCK_WAIT_S = 30.0


# Sets the limits on open files, then becomes the command (same process): a preexec_fn would
# do the same, but is unsafe in a test process that has threads.
_LIMITED = (
    "import os, resource, sys; "
    "soft, hard = map(int, sys.argv[1].split(':')); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


def with_file_limits(limits: str, argv: list[str]) -> list[str]:
    """``argv`` run with ``limits`` (``SOFT:HARD``) on open files."""
    return [sys.executable, "-c", _LIMITED, limits, *argv]


def says(line: str, message: str) -> bool:
    """Whether ``line`` is a log record whose message is ``message``."""
    record = LOG_RECORD.match(line)
    return record is not None and record["message"] == message


@dataclass
class Served:
    process: asyncio.subprocess.Process
    port: int
    output: list[str]
    # Set by drain(): the task reading the rest of the output.
    draining: asyncio.Task[None] | None = None

    def drain(self) -> None:
        """Read the output into ``output`` from now on, line by line, in the background.

        A test whose load makes the server log more than a pipe holds (64 KiB of access-log
        lines) must: a server whose output nobody reads blocks on its next log line, as any
        program writing to a full pipe does. ``read_until`` cannot be used after this.
        """
        assert self.draining is None
        self.draining = asyncio.create_task(self._read_to_the_end())

    async def _read_to_the_end(self) -> None:
        assert self.process.stdout is not None
        while raw := await self.process.stdout.readline():
            self.output.append(raw.decode().rstrip("\n"))

    async def read_until(self, wanted: Callable[[str], bool]) -> str:
        """The next output line ``wanted`` accepts (all lines read are kept in ``output``)."""
        assert self.process.stdout is not None
        async with asyncio.timeout(START_WAIT_S):
            while True:
                raw = await self.process.stdout.readline()
                assert raw, f"ledgerd ended its output early:\n{self.log}"
                line = raw.decode().rstrip("\n")
                self.output.append(line)
                if wanted(line):
                    return line

    async def wait_for_exit(self) -> int:
        assert self.process.stdout is not None
        async with asyncio.timeout(STOP_WAIT_S):
            if self.draining is None:
                rest = await self.process.stdout.read()
                self.output.extend(rest.decode().splitlines())
            else:
                await self.draining
            return await self.process.wait()

    @property
    def log(self) -> str:
        return "\n".join(self.output)


def ledgerd_environment(database_url: str, **settings: str) -> dict[str, str]:
    """The environment a ``ledgerd`` subprocess runs in: ``settings`` as ``LEDGERD_*``.

    Authentication is off unless ``settings`` say otherwise (``auth="required"``, or
    ``auth="default"`` for whatever ``ledgerd`` does unconfigured): the servers these tests
    start are there for the ledger's behaviour, and tests/security proves the checks.
    """
    settings = {"auth": "off", **settings}
    if settings["auth"] == "default":
        del settings["auth"]
    environment = {
        **os.environ,
        "LEDGERD_DATABASE_URL": database_url,
        "PYTHONUNBUFFERED": "1",  # its lines must reach the test as they are written
        **{f"LEDGERD_{name.upper()}": value for name, value in settings.items()},
    }
    if "auth" not in settings:
        environment.pop("LEDGERD_AUTH", None)
    return environment


@asynccontextmanager
async def running_ledgerd(
    command: str,
    database_url: str,
    ready: Callable[[str], bool],
    *,
    file_limits: str | None = None,
    **settings: str,
) -> AsyncIterator[Served]:
    """``ledgerd COMMAND`` on ``database_url``, once a line of its output is ``ready``.

    ``settings`` become ``LEDGERD_*`` variables; ``file_limits`` (``SOFT:HARD``, as prlimit
    writes them) are the limits on open files it starts with. Killed on the way out if the test
    left it running (a failed test must not leak it).
    """
    env = ledgerd_environment(database_url, **settings)
    argv = [str(LEDGERD), command]
    process = await asyncio.create_subprocess_exec(
        *(argv if file_limits is None else with_file_limits(file_limits, argv)),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    running = Served(process, 0, [])
    try:
        await running.read_until(ready)
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            # Read to the end: on Python 3.11 wait() returns only once the output pipe is seen
            # closed, which never happens while unread output has paused its reading.
            await running.wait_for_exit()


def _listening(line: str) -> bool:
    return LISTENING.match(line) is not None


@asynccontextmanager
async def ledgerd_serve(
    database_url: str, *, file_limits: str | None = None, **settings: str
) -> AsyncIterator[Served]:
    # Whatever serve listens on (gRPC, the REST gateway) must not need a fixed port.
    addresses = {"grpc_address": "127.0.0.1:0", "http_address": "127.0.0.1:0"}
    async with running_ledgerd(
        "serve", database_url, _listening, file_limits=file_limits, **{**addresses, **settings}
    ) as served:
        match = LISTENING.match(served.output[-1])
        assert match is not None
        served.port = int(match.group(1))
        yield served


@asynccontextmanager
async def client(port: int) -> AsyncIterator[tuple[LedgerServiceAsyncStub, grpc.aio.Channel]]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield ledger_pb2_grpc.LedgerServiceStub(channel), channel


async def _books(stub: LedgerServiceAsyncStub) -> None:
    await stub.CreateLedger(pb.CreateLedgerRequest(id="L"), timeout=CALL_TIMEOUT_S)
    for account in ("bank", "alice"):
        await stub.CreateAccount(
            pb.CreateAccountRequest(ledger="L", id=account, asset="USD/2"), timeout=CALL_TIMEOUT_S
        )


async def test_serve_answers_then_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/served.db"
    async with ledgerd_serve(url) as served, client(served.port) as (stub, _):
        # The embedded database migrated itself; the API works end to end.
        await _books(stub)
        posted = await stub.PostTransfer(
            pb.PostTransferRequest(
                ledger="L",
                transfer=pb.TransferInput(
                    idempotency_key="k",
                    legs=[pb.Leg(debit_account="bank", credit_account="alice", amount=42)],
                ),
            ),
            timeout=CALL_TIMEOUT_S,
        )
        got = await stub.GetTransfer(
            pb.GetTransferRequest(ledger="L", transfer=posted.id), timeout=CALL_TIMEOUT_S
        )
        assert got == posted

        served.process.send_signal(signal.SIGTERM)
        exit_code = await served.wait_for_exit()

    assert exit_code == 0, served.log
    assert any(says(line, STOPPING) for line in served.output), served.log
    assert says(served.output[-1], STOPPED), served.log
    assert "Traceback" not in served.log


async def _until_a_lock_waiter(url: str) -> None:
    engine = create_engine(url)
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    try:
        async with asyncio.timeout(LOCK_WAIT_S):
            while True:
                async with engine.connect() as connection:
                    if (await connection.execute(query)).scalar_one() > 0:
                        return
                await asyncio.sleep(0.02)
    finally:
        await engine.dispose()


async def _not_serving(channel: grpc.aio.Channel) -> None:
    """Wait until the health service stops reporting SERVING or the server refuses calls."""
    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )

    async def serving() -> bool:
        try:
            response = await check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            # Refused outright, or cancelled by a server that began shutting down under it.
            if error.code() not in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}:
                raise
            return False
        return response.status == health_pb2.HealthCheckResponse.SERVING

    async with asyncio.timeout(STOP_WAIT_S):
        while True:
            if not await serving():
                return
            await asyncio.sleep(0.02)


async def test_a_call_in_flight_finishes_during_shutdown(postgres_url: str) -> None:
    """A transfer blocked on a row lock when SIGTERM arrives still completes, then serve exits.

    The test itself holds the lock (the ledger's chain head, which every posting locks), so
    the call is in flight for exactly as long as the test decides, with no sleep in the server.
    """
    engine = create_engine(postgres_url)
    try:
        await MIGRATIONS.upgrade(engine)
        async with (
            ledgerd_serve(postgres_url, shutdown_grace_seconds=str(STOP_WAIT_S)) as served,
            client(served.port) as (stub, channel),
        ):
            await _books(stub)
            async with engine.connect() as blocker:
                await blocker.execute(text("SELECT id FROM ledgers WHERE id = 'L' FOR UPDATE"))
                in_flight = asyncio.ensure_future(
                    stub.PostTransfer(
                        pb.PostTransferRequest(
                            ledger="L",
                            transfer=pb.TransferInput(
                                idempotency_key="slow",
                                legs=[
                                    pb.Leg(debit_account="bank", credit_account="alice", amount=7)
                                ],
                            ),
                        ),
                        timeout=CALL_TIMEOUT_S,
                    )
                )
                await _until_a_lock_waiter(postgres_url)

                served.process.send_signal(signal.SIGTERM)
                await served.read_until(lambda line: says(line, STOPPING))
                await _not_serving(channel)
                # Still waiting for our lock, and the server is still waiting for the call.
                assert not in_flight.done()
                assert served.process.returncode is None
                await blocker.rollback()

            posted = await asyncio.wait_for(in_flight, CALL_TIMEOUT_S)
            exit_code = await served.wait_for_exit()

        assert (posted.idempotency_key, posted.sequence) == ("slow", 1)
        assert exit_code == 0, served.log
        assert says(served.output[-1], STOPPED), served.log
        async with engine.connect() as connection:
            stored = await connection.execute(text("SELECT idempotency_key FROM transfers"))
            assert stored.scalars().all() == ["slow"]
    finally:
        await engine.dispose()
