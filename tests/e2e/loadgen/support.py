"""What the load generator's tests share: a running server and tiny run configurations.

The load generator runs in the test's event loop beside the server (``serve_rest``: the real
composition root, gRPC and REST on free ports), or as the ``ledgerd bench`` console script in
a subprocess; either way it reaches the server over the network only.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from typing import Any

from rich.console import Console

from ledgerd.loadgen.config import GRPC, BenchConfig, Target
from tests.e2e.rest.support import RestApi

LEDGER = "lg-test"


@dataclass(frozen=True, slots=True)
class Served:
    api: RestApi
    database_url: str

    def target(self, transport: str) -> Target:
        port = self.api.grpc_port if transport == GRPC else self.api.http_port
        return Target(transport, "127.0.0.1", port)

    def config(self, transport: str = GRPC, **changes: Any) -> BenchConfig:  # noqa: ANN401 - BenchConfig fields
        """A tiny run: 100 transfers by 4 clients over 20 accounts.

        ``ledgerd verify`` runs only when a test passes ``database_url=served.database_url``:
        it is a process of its own, which takes seconds to start.
        """
        base = BenchConfig(
            target=self.target(transport),
            accounts=20,
            clients=4,
            duration_s=None,
            transfers=100,
            ledger=LEDGER,
            seed=7,
        )
        return replace(base, **changes)


def quiet() -> Console:
    """A console that keeps what it is given, for the test to read (not a terminal: no bar)."""
    return Console(file=io.StringIO(), width=200, force_terminal=False)


def text_of(console: Console) -> str:
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()
