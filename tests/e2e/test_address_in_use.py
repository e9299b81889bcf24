"""``ledgerd serve`` on an address another process holds: one line naming the variable, exit 2.

Issue 12, items 1 and 4. grpc sets ``SO_REUSEPORT`` by default, so a second server on the
same gRPC port used to start without a word and split the channels between two databases.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from ledgerd.v1 import ledger_pb2 as pb
from tests.e2e.grpc.test_serve import (
    CALL_TIMEOUT_S,
    LEDGERD,
    LISTENING,
    START_WAIT_S,
    client,
    ledgerd_environment,
    ledgerd_serve,
)

EXIT_ERROR = 2
# Lines of a start-up that failed while tearing down what had started.
TEARDOWN_NOISE = ("Traceback", "Event loop is closed", "was never awaited", "Exception ignored")


@dataclass(frozen=True, slots=True)
class Attempt:
    exit_code: int | None  # None: it started listening instead of refusing
    output: list[str]

    @property
    def log(self) -> str:
        return "\n".join(self.output)


async def _serve_attempt(tmp_path: Path, **settings: str) -> Attempt:
    """Run ``ledgerd serve`` on a database of its own until it exits or starts listening."""
    env = ledgerd_environment(f"sqlite+aiosqlite:///{tmp_path}/second.db", **settings)
    process = await asyncio.create_subprocess_exec(
        str(LEDGERD),
        "serve",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    output: list[str] = []
    try:
        async with asyncio.timeout(START_WAIT_S):
            while raw := await process.stdout.readline():
                output.append(raw.decode().rstrip("\n"))
                if LISTENING.match(output[-1]):
                    return Attempt(None, output)
            return Attempt(await process.wait(), output)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            rest = await process.stdout.read()
            output.extend(rest.decode().splitlines())
            await process.wait()


def _assert_refused(attempt: Attempt, variable: str, address: str) -> None:
    assert attempt.exit_code == EXIT_ERROR, attempt.log
    naming = [line for line in attempt.output if variable in line]
    assert naming == [naming[0]], attempt.log  # one line
    assert naming[0].startswith(f"error: {variable}={address}: "), attempt.log
    assert "in use" in naming[0], attempt.log
    for noise in TEARDOWN_NOISE:
        assert noise not in attempt.log


@contextmanager
def _held_port() -> Iterator[int]:
    """A loopback port a plain listening socket holds (no SO_REUSEPORT), as any program would."""
    with socket.create_server(("127.0.0.1", 0)) as holder:
        yield holder.getsockname()[1]


async def test_a_second_serve_on_the_same_grpc_port_is_refused(tmp_path: Path) -> None:
    first_url = f"sqlite+aiosqlite:///{tmp_path}/first.db"
    async with ledgerd_serve(first_url) as first:
        address = f"127.0.0.1:{first.port}"
        attempt = await _serve_attempt(tmp_path, grpc_address=address, http_address="127.0.0.1:0")
        _assert_refused(attempt, "LEDGERD_GRPC_ADDRESS", address)

        # The first server still answers every channel, alone.
        async with client(first.port) as (stub, _):
            await stub.CreateLedger(pb.CreateLedgerRequest(id="only"), timeout=CALL_TIMEOUT_S)
            for _ in range(5):
                async with client(first.port) as (fresh, _):
                    found = await fresh.GetLedger(
                        pb.GetLedgerRequest(ledger="only"), timeout=CALL_TIMEOUT_S
                    )
                    assert found.id == "only"
        first.process.send_signal(signal.SIGTERM)
        assert await first.wait_for_exit() == 0, first.log


async def test_a_grpc_port_another_program_holds_is_refused(tmp_path: Path) -> None:
    with _held_port() as port:
        address = f"127.0.0.1:{port}"
        attempt = await _serve_attempt(tmp_path, grpc_address=address, http_address="127.0.0.1:0")
    _assert_refused(attempt, "LEDGERD_GRPC_ADDRESS", address)


async def test_port_sharing_asked_for_by_both_servers_is_allowed(tmp_path: Path) -> None:
    first_url = f"sqlite+aiosqlite:///{tmp_path}/first.db"
    async with ledgerd_serve(first_url, grpc_reuse_port="true") as first:
        attempt = await _serve_attempt(
            tmp_path,
            grpc_address=f"127.0.0.1:{first.port}",
            http_address="127.0.0.1:0",
            grpc_reuse_port="true",
        )
        assert attempt.exit_code is None, attempt.log  # it started, beside the first
        ports = [int(found.group(1)) for line in attempt.output if (found := LISTENING.match(line))]
        assert ports == [first.port], attempt.log
        async with client(first.port) as (_, channel):
            await asyncio.wait_for(channel.channel_ready(), CALL_TIMEOUT_S)
            assert channel.get_state() is grpc.ChannelConnectivity.READY
        first.process.send_signal(signal.SIGTERM)
        assert await first.wait_for_exit() == 0, first.log


async def test_an_http_port_in_use_is_refused_and_grpc_stops_cleanly(tmp_path: Path) -> None:
    with _held_port() as port:
        address = f"127.0.0.1:{port}"
        attempt = await _serve_attempt(tmp_path, grpc_address="127.0.0.1:0", http_address=address)
    _assert_refused(attempt, "LEDGERD_HTTP_ADDRESS", address)
