"""``ledgerd bench`` against ``ledgerd serve`` with ``LEDGERD_AUTH=required``: it gets tokens.

One real server for the module (``ledgerd serve`` in a subprocess on SQLite, as the bench
scripts start it), a client made with ``ledgerd clients create`` as ``bench/run.py`` makes it.
The load generator gets its tokens from the server's token endpoint by the client-credentials
grant, over gRPC and REST, in one process and with client processes of its own; the secret
appears in no output and no result.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ledgerd.loadgen.bench import EXIT_ERROR, EXIT_OK, BenchOptions, bench
from ledgerd.loadgen.config import GRPC, HTTP, BenchConfig, Target, parse_target
from ledgerd.loadgen.credentials import BenchAuth, bench_auth
from ledgerd.loadgen.served import LEDGERD, BenchClient, ServedLedgerd
from tests.e2e.loadgen.support import quiet, text_of

# An upper bound so a hung command fails the run instead of stalling it; not a measurement.
COMMAND_TIMEOUT_S = 180


class Server:
    def __init__(self, served: ServedLedgerd, client: BenchClient) -> None:
        self.served, self.client = served, client

    def target(self, transport: str) -> Target:
        return parse_target(self.served.grpc if transport == GRPC else self.served.http)

    def config(self, transport: str, auth: BenchAuth | None, ledger: str) -> BenchConfig:
        return BenchConfig(
            target=self.target(transport),
            accounts=20,
            clients=4,
            duration_s=None,
            transfers=100,
            ledger=ledger,
            seed=7,
            auth=auth,
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("auth-served")
    environment = {
        **os.environ,
        "LEDGERD_DATABASE_URL": f"sqlite+aiosqlite:///{directory}/ledgerd.db",
        "LEDGERD_AUTH": "required",
        "LEDGERD_LOG_LEVEL": "WARNING",
    }
    subprocess.run([LEDGERD, "migrate"], env=environment, check=True, capture_output=True)  # noqa: S603
    client = BenchClient.create(environment)
    with ServedLedgerd(environment, directory / "server.log") as served:
        yield Server(served, client)


async def _bench(config: BenchConfig, tmp_path: Path) -> tuple[int, str, str, str]:
    output = tmp_path / "result.json"
    out, err = quiet(), quiet()
    status, _ = await bench(config, BenchOptions(output=output), out=out, err=err)
    written = output.read_text() if output.exists() else ""
    return status, text_of(out), text_of(err), written


@pytest.mark.parametrize("transport", [GRPC, HTTP])
async def test_bench_gets_a_token_by_client_credentials(
    server: Server, tmp_path: Path, transport: str
) -> None:
    # Over REST the token URL is the target's own; over gRPC it must be given.
    token_url = server.served.token_url if transport == GRPC else None
    client = server.client
    auth = bench_auth(
        server.target(transport), None, client.client_id, client.client_secret, token_url
    )
    config = server.config(transport, auth, ledger=f"tok-{transport}")
    status, out, err, written = await _bench(config, tmp_path)
    assert status == EXIT_OK, (out, err)
    document = json.loads(written)
    assert document["result"]["transfers_ok"] == 100
    assert document["result"]["errors"] == {}
    checks = {check["name"]: check for check in document["invariants"]["checks"]}
    assert checks["authentication"]["ok"], checks
    assert document["config"]["auth"] == {
        "method": "client_credentials",
        "client_id": client.client_id,
        "token_url": server.served.token_url,
    }
    for text in (out, err, written):
        assert client.client_secret not in text


async def test_without_a_token_the_run_stops_and_says_why(server: Server, tmp_path: Path) -> None:
    config = server.config(GRPC, None, ledger="tok-none")
    status, _, err, written = await _bench(config, tmp_path)
    assert status == EXIT_ERROR
    assert "UNAUTHENTICATED" in err
    assert "--client-id" in err  # the hint: what to give
    assert not written


async def test_a_forged_token_is_refused_and_not_echoed(server: Server, tmp_path: Path) -> None:
    forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    config = replace(server.config(HTTP, None, ledger="tok-forged"), auth=BenchAuth(token=forged))
    status, out, err, _ = await _bench(config, tmp_path)
    assert status == EXIT_ERROR
    assert "UNAUTHENTICATED" in err
    assert forged not in out + err


def test_the_console_script_takes_the_secret_from_its_environment(
    server: Server, tmp_path: Path
) -> None:
    output = tmp_path / "result.json"
    client = server.client
    completed = subprocess.run(  # noqa: S603 - our own console script
        [
            LEDGERD,
            "bench",
            f"--target={server.served.grpc}",
            f"--client-id={client.client_id}",
            f"--token-url={server.served.token_url}",
            "--accounts=10",
            "--clients=4",
            "--processes=2",
            "--transfers=40",
            "--ledger=tok-cli",
            f"--output={output}",
        ],
        env={**os.environ, "LEDGERD_CLIENT_SECRET": client.client_secret},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == EXIT_OK, (completed.stdout, completed.stderr)
    assert "every call authenticated" in completed.stdout
    written = output.read_text()
    assert json.loads(written)["result"]["transfers_ok"] == 40
    for text in (completed.stdout, completed.stderr, written):
        assert client.client_secret not in text
