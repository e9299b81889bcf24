"""``ledgerd bench`` as a user runs it: the console script, with client processes of its own."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path

from typer.testing import CliRunner

from ledgerd.main.cli import app
from tests.e2e.rest.support import serve_rest

LEDGERD = Path(sys.executable).parent / "ledgerd"
# An upper bound so a hung command fails the run instead of stalling it; not a measurement.
COMMAND_TIMEOUT_S = 180


async def test_bench_with_two_client_processes(migrated_sqlite_url: str, tmp_path: Path) -> None:
    output = tmp_path / "result.json"
    async with serve_rest(migrated_sqlite_url) as api:
        # A subprocess, awaited without blocking: the server runs in this event loop.
        process = await asyncio.create_subprocess_exec(
            str(LEDGERD),
            "bench",
            f"--target=grpc://127.0.0.1:{api.grpc_port}",
            "--workload=hot",
            "--accounts=10",
            "--clients=4",
            "--processes=2",
            "--batch=3",
            "--transfers=60",
            "--ledger=lg-cli",
            f"--output={output}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_S)
    out, err = stdout.decode(), stderr.decode()
    assert process.returncode == 0, (out, err)
    assert "transfers/s" in out
    assert "acknowledged transfers present" in out
    assert "setting up ledger 'lg-cli'" in err
    document = json.loads(output.read_text())
    assert document["config"]["processes"] == 2
    result = document["result"]
    # 4 clients, 15 transfers each in batches of 3, over two processes: merged.
    assert (result["transfers_ok"], result["requests"]) == (60, 20)
    assert document["invariants"]["ok"] is True


def test_bench_refuses_options_that_cannot_work() -> None:
    runner = CliRunner()
    cases = {
        ("--target", "ftp://127.0.0.1:1"): "expected grpc://HOST:PORT",
        ("--duration", "soon"): "duration 'soon'",
        ("--clients", "2", "--processes", "3"): "processes: out of range",
        ("--ledger", "no spaces"): "ledger 'no spaces'",
        ("--transfers", "10", "--duration", "5s"): "either a duration or a number",
    }
    for arguments, message in cases.items():
        result = runner.invoke(app, ["bench", *arguments])
        assert result.exit_code == 2, (arguments, result.output)
        assert message in result.output, (arguments, result.output)


def test_bench_without_a_server_says_so() -> None:
    with socket.socket() as probe:  # a port nothing listens on: bound, then released
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner().invoke(
        app, ["bench", f"--target=http://127.0.0.1:{port}", "--trivial", "--transfers=5"]
    )
    assert result.exit_code == 2, result.output
    assert "CLIENT_ConnectionRefusedError" in result.output
