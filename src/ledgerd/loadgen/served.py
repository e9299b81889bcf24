"""``ledgerd serve`` as a child process on free ports, for the benchmark scripts in bench/.

Started with the caller's environment (the database and settings under test), it is ready
once it has printed where it listens; leaving the block sends SIGTERM and waits, so the
server drains and prints its last lines (e.g. its garbage-collector pauses) before exit.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

LEDGERD = Path(sys.executable).parent / "ledgerd"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
_GRPC_LINE = re.compile(r"^gRPC\s+(\S+):(\d+)", re.MULTILINE)
_REST_LINE = re.compile(r"^REST\s+http://(\S+):(\d+)/", re.MULTILINE)


# What `ledgerd bench` needs: set up a ledger and accounts, post, and read back for its checks.
BENCH_SCOPES = "ledger.read,ledger.write,transfers.write,ledgers.admin"
TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a path, not a password


@dataclass(frozen=True)
class BenchClient:
    """A client made on the server's database for ``ledgerd bench`` to get its tokens with."""

    client_id: str
    client_secret: str = field(repr=False)

    @classmethod
    def create(cls, environment: dict[str, str], name: str = "bench") -> BenchClient:
        """``ledgerd clients create`` on ``environment``'s database, every ledger granted."""
        completed = subprocess.run(  # noqa: S603 - our own console script
            [LEDGERD, "clients", "create", name, f"--scopes={BENCH_SCOPES}", "--all-ledgers"],
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            msg = f"ledgerd clients create failed ({completed.returncode}): {completed.stderr}"
            raise RuntimeError(msg)
        created = json.loads(completed.stdout)
        return cls(str(created["client_id"]), str(created["client_secret"]))

    def bench_options(self, token_url: str) -> list[str]:
        """The client id and token URL for ``ledgerd bench``'s command line.

        The secret goes in its environment instead (:meth:`bench_environment`): ``ps`` shows
        command lines.
        """
        return [f"--client-id={self.client_id}", f"--token-url={token_url}"]

    def bench_environment(self, environment: dict[str, str]) -> dict[str, str]:
        return {**environment, "LEDGERD_CLIENT_SECRET": self.client_secret}


class ServedLedgerd:
    """``ledgerd serve`` in the background on free ports; SIGTERM and wait on exit."""

    def __init__(
        self, environment: dict[str, str], log: Path, launcher: Sequence[str] = ()
    ) -> None:
        # ``launcher``: what runs the console script, e.g. ``python -m cProfile -o FILE``.
        self._launcher = tuple(launcher)
        self._environment = {
            **environment,
            "LEDGERD_GRPC_ADDRESS": "127.0.0.1:0",
            "LEDGERD_HTTP_ADDRESS": "127.0.0.1:0",
        }
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None
        self.grpc = ""
        self.http = ""

    @property
    def pid(self) -> int:
        if self._process is None:
            msg = "the server has not been started"
            raise RuntimeError(msg)
        return self._process.pid

    def __enter__(self) -> Self:
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(  # noqa: S603 - our own console script
                [*self._launcher, LEDGERD, "serve"],
                env=self._environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self._log.read_text(errors="replace")
            grpc, rest = _GRPC_LINE.search(text), _REST_LINE.search(text)
            if grpc and rest:
                self.grpc = f"grpc://{grpc.group(1)}:{grpc.group(2)}"
                self.http = f"http://{rest.group(1)}:{rest.group(2)}"
                return self
            if self._process.poll() is not None:
                break
            time.sleep(0.1)
        self.__exit__(None, None, None)
        msg = f"ledgerd serve did not start; see {self._log}"
        raise RuntimeError(msg)

    @property
    def token_url(self) -> str:
        """The server's token endpoint (on its HTTP side, whichever target a run uses)."""
        return f"{self.http}{TOKEN_PATH}"

    def __exit__(self, *_: object) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
