"""What a benchmark run is asked to do: target, workload, concurrency and how long."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.ids import check_id

if TYPE_CHECKING:  # credentials imports the transports, which import this module
    from ledgerd.loadgen.credentials import BenchAuth

GRPC = "grpc"
HTTP = "http"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


class Workload(StrEnum):
    UNIFORM = "uniform"  # both accounts drawn uniformly: little contention
    HOT = "hot"  # every transfer touches one account: all writers queue on its row
    ZIPF = "zipf"  # a few accounts take most transfers, as in real books


class RestClient(StrEnum):
    LEAN = "lean"  # ledgerd.loadgen.http1: a few times cheaper per request than httpx
    HTTPX = "httpx"


class BenchConfigError(ValueError):
    """A command-line value that cannot work; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the server listens: ``grpc://HOST:PORT`` or ``http://HOST:PORT``."""

    scheme: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.address}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.address}"


def parse_target(text: str) -> Target:
    parts = urlsplit(text)
    if parts.scheme not in {GRPC, HTTP} or not parts.hostname or parts.port is None:
        raise BenchConfigError(f"target {text!r}: expected grpc://HOST:PORT or http://HOST:PORT")
    if parts.path not in {"", "/"} or parts.query:
        raise BenchConfigError(f"target {text!r}: no path or query, the API's paths are fixed")
    return Target(parts.scheme, parts.hostname, parts.port)


def parse_duration(text: str) -> float:
    """Seconds from ``20s``, ``500ms``, ``2m`` or a bare number of seconds."""
    match = _DURATION.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise BenchConfigError(f"duration {text!r}: expected e.g. 20s, 500ms, 2m")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True, slots=True)
class BenchConfig:
    target: Target
    workload: Workload = Workload.UNIFORM
    accounts: int = 10_000
    clients: int = 64
    batch: int = 1
    """Transfers per request: 1 uses PostTransfer, more use PostTransfers (transfers:batch)."""
    duration_s: float | None = 20.0
    """How long to run; None when ``transfers`` bounds the run instead."""
    transfers: int | None = None
    processes: int = 1
    ledger: str = "bench"
    trivial: bool = False
    """Call the health endpoint instead of posting: the client's own ceiling."""
    database_url: str | None = None
    """The server's database: where pgbench runs, and ``ledgerd verify`` reads the ledger."""
    verify: bool = True
    """Run ``ledgerd verify`` after the run (needs ``database_url``)."""
    rest_client: RestClient = RestClient.LEAN
    """What makes the timed REST calls; set-up and checks always use httpx."""
    request_timeout_s: float = 30.0
    zipf_exponent: float = 1.1
    seed: int | None = None
    asset: str = "USD/2"
    auth: BenchAuth | None = None
    """How the calls authenticate (``LEDGERD_AUTH=required``); None sends no token."""

    def __post_init__(self) -> None:
        if (self.duration_s is None) == (self.transfers is None):
            raise BenchConfigError("give either a duration or a number of transfers")
        checks = {
            "accounts": self.accounts >= 2,  # noqa: PLR2004 - a transfer needs two accounts
            "clients": self.clients >= 1,
            "batch": 1 <= self.batch <= 10_000,  # noqa: PLR2004 - the API's batch limit
            "processes": 1 <= self.processes <= self.clients,
            "transfers": self.transfers is None or self.transfers >= 1,
            "request timeout": self.request_timeout_s > 0,
            "zipf exponent": self.zipf_exponent > 0,
        }
        for name, good in checks.items():
            if not good:
                raise BenchConfigError(f"{name}: out of range ({self.describe()})")
        try:
            check_id(self.ledger, "ledger")
        except LedgerdError as error:
            raise BenchConfigError(f"ledger {self.ledger!r}: {error.message}") from error

    @property
    def transport(self) -> str:
        return self.target.scheme

    def describe(self) -> dict[str, Any]:
        """The configuration as JSON-ready values (no password, token or client secret)."""
        document = asdict(self)
        document["target"] = str(self.target)
        document["workload"] = str(self.workload)
        document["rest_client"] = str(self.rest_client)
        document["database_url"] = _without_password(self.database_url)
        document["auth"] = None if self.auth is None else self.auth.describe()
        return document


def _without_password(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)
