"""A partner's webhook receiver, for real: an HTTP server on 127.0.0.1 that checks signatures.

The server is uvicorn running a Starlette app on a socket of its own, in the test's event loop,
over plain HTTP or, given a certificate and its key, over HTTPS.
Each path is one endpoint; how it answers is up to the test (``answer``: a status, a delay),
and every request is kept with its headers, body and time of arrival.

The signature check is written from docs/webhooks.md, not with ledgerd's signer: HMAC-SHA256
under the secret's UTF-8 bytes, over ``{t}.{body}``, in hex, one ``v1`` per secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# A bound for a delivery that never comes to fail the test, not a measurement.
ARRIVAL_WAIT_S = 20.0


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request as the receiver got it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()

    @property
    def document(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def sequence(self) -> int:
        return int(self.headers["ledgerd-sequence"])

    @property
    def event_id(self) -> str:
        return self.headers["ledgerd-event-id"]

    @property
    def event_type(self) -> str:
        return self.headers["ledgerd-event-type"]


def signatures_of(header: str) -> tuple[int, list[str]]:
    """``t=<unix>,v1=<hex>[,v1=<hex>...]`` → the timestamp and the v1 signatures."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.partition("=")
        if name == "t":
            timestamp = int(value)
        elif name == "v1":
            signatures.append(value)
    assert timestamp is not None, header
    return timestamp, signatures


def expected_signature(secret: str, timestamp: int, body: bytes) -> str:
    """What docs/webhooks.md says a receiver computes."""
    return hmac.new(
        secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()


def signed_by(arrival: Arrival, secret: str) -> bool:
    """Whether a ``v1`` signature of the request is ``secret``'s (compared in constant time)."""
    timestamp, signatures = signatures_of(arrival.headers["ledgerd-signature"])
    expected = expected_signature(secret, timestamp, arrival.body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)


# How a path answers a request: a status code, after an optional delay in seconds.
Answer = Callable[[Arrival], Awaitable[int]]


async def _ok(_arrival: Arrival) -> int:
    return 200


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    """The files of the certificate an HTTPS receiver presents (its chain, leaf first) and key."""

    certificate: Path
    key: Path


@dataclass
class Receiver:
    port: int
    https: bool = False
    arrivals: list[Arrival] = field(default_factory=list)
    answers: dict[str, Answer] = field(default_factory=dict)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def url(self, path: str, *, host: str = "127.0.0.1") -> str:
        """Its URL for ``path``; ``host``: another name of 127.0.0.1 (``localhost``)."""
        scheme = "https" if self.https else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def at(self, path: str) -> list[Arrival]:
        return [arrival for arrival in self.arrivals if arrival.path == path]

    async def wait_for(
        self, done: Callable[[], bool], *, timeout_s: float = ARRIVAL_WAIT_S
    ) -> None:
        """Wait until ``done()`` holds, checked after each arrival; fail after ``timeout_s``."""
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(done)

    async def handle(self, request: Request) -> Response:
        arrival = Arrival(
            path=request.url.path,
            headers={name.lower(): value for name, value in request.headers.items()},
            body=await request.body(),
            at=time.monotonic(),
        )
        # Kept in the order they arrive, before the answer (which may take its time).
        async with self._changed:
            self.arrivals.append(arrival)
            self._changed.notify_all()
        status = await self.answers.get(arrival.path, _ok)(arrival)
        return Response(status_code=status)


@contextlib.asynccontextmanager
async def receiving(tls: ServerCertificate | None = None) -> AsyncIterator[Receiver]:
    """A receiver listening on a free port of 127.0.0.1 until the block ends (HTTPS: ``tls``)."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    receiver = Receiver(port=listening.getsockname()[1], https=tls is not None)
    app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST"])])
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        ssl_certfile=None if tls is None else tls.certificate,
        ssl_keyfile=None if tls is None else tls.key,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        while not server.started:
            if serving.done():
                await serving  # it failed: say why
            await asyncio.sleep(0.01)
        yield receiver
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        listening.close()
