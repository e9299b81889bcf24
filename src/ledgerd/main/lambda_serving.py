"""What ``ledgerd serve`` becomes inside an AWS Lambda execution environment: the HTTP app only.

An environment runs one invocation at a time and is frozen between them, so no task of ours
runs while no request is in flight. What ``serve`` does in the background is therefore either
done elsewhere or done inline, at the start of an invocation (docs/deploy.md, "AWS Lambda"):

- off, done by ``ledgerd worker`` running elsewhere: the outbox relay (events wait in the
  outbox until a worker publishes them) and the contexts' sweeps (expired holds);
- off, meaningless here: the gRPC server (API Gateway and ALB carry HTTP requests, not gRPC
  streams), the database health watch (it only feeds gRPC health), the posting batcher (one
  request at a time leaves nothing to coalesce, and its workers would sit frozen), the TLS
  certificate reload (API Gateway and ALB terminate TLS);
- inline, when due, before the request: re-reading the ``secret://`` references
  (``LEDGERD_SECRET_TTL_SECONDS``) and reloading rotated signing keys
  (``LEDGERD_KEY_RELOAD_INTERVAL_SECONDS``);
- refused: leased database credentials (``LEDGERD_DATABASE_CREDENTIALS``), whose lease needs
  renewing while the environment may sit frozen past its end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
from dishka import AsyncContainer
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.gateway.asgi import Receive, Scope, Send
from ledgerd.gateway.http_rules import HttpRoute, http_routes
from ledgerd.gateway.problems import Problem
from ledgerd.gateway.router import Router, RoutingError
from ledgerd.identity.adapters.signing_keys import KeyRingReloader
from ledgerd.main import http_app, tls
from ledgerd.main.bounded_context import GrpcService, services_of
from ledgerd.main.command_runner import ensure_schema
from ledgerd.main.container import build_container
from ledgerd.main.contexts import ENABLED_CONTEXTS
from ledgerd.main.database_checks import require_reachable
from ledgerd.main.secrets import ResolvedSecrets, resolve_settings
from ledgerd.main.settings import Settings
from ledgerd.platform.db.engine import is_sqlite

log = logging.getLogger(__name__)

LEASED_CREDENTIALS_REFUSED = (
    "LEDGERD_DATABASE_CREDENTIALS: leased credentials need renewing while the function may sit "
    "frozen, which Lambda does not allow; give the URL as a secret:// reference (a rotated "
    "Secrets Manager secret, say) in LEDGERD_DATABASE_URL instead"
)
# The code of the answer to a streaming route; gateway-level, like ROUTE_NOT_FOUND.
STREAMING_UNAVAILABLE = "STREAMING_UNAVAILABLE"
Clock = Callable[[], float]


class LambdaSettingsError(Exception):
    """Settings Lambda cannot run with: one line naming the variable."""


def lambda_settings(settings: Settings) -> Settings:
    """``settings`` as the Lambda function runs them (see the module's docstring)."""
    if settings.database_credentials is not None:
        raise LambdaSettingsError(LEASED_CREDENTIALS_REFUSED)
    return settings.model_copy(update={"batching": False})


class BufferedOnly:
    """The HTTP app, minus the streaming routes, which answer 501 in the API's error format.

    Lambda buffers a response whole (6 MB at most, 1 MB behind an ALB) before sending any of
    it, so a streamed statement would be cut at that size, as a 502 from the gateway in front,
    after holding all of it in memory. Refusing it up front says why and what to use instead.
    """

    def __init__(self, app: http_app.HttpApp, services: Sequence[GrpcService]) -> None:
        self._app = app
        streaming = (
            route
            for service in services
            for route in http_routes(service.descriptor)
            if route.server_streaming
        )
        self._streaming = Router(streaming)

    def _streaming_route(self, scope: Scope) -> HttpRoute | None:
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        raw_path = scope.get("raw_path") or scope["path"].encode()
        try:
            return self._streaming.match(method, raw_path.decode("latin-1")).route
        except RoutingError:
            return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._streaming_route(scope) if scope["type"] == "http" else None
        if route is None:
            await self._app(scope, receive, send)
            return
        problem = Problem(
            501,
            STREAMING_UNAVAILABLE,
            f"{route.method.name} streams its answer, which AWS Lambda cannot send: call it "
            "over gRPC on a server, or read the same entries page by page over REST",
            {"method": route.method.full_name},
        )
        await problem.response()(scope, receive, send)


@dataclass(slots=True)
class Upkeep:
    """What ``serve``'s background workers do, done inline when due (module's docstring)."""

    secrets: ResolvedSecrets
    keys: KeyRingReloader
    secret_ttl_s: float
    key_interval_s: float
    clock: Clock = time.monotonic
    _secrets_read_at: float = 0.0
    _keys_read_at: float = 0.0

    def __post_init__(self) -> None:
        self._secrets_read_at = self._keys_read_at = self.clock()

    async def run_due(self) -> None:
        """Re-read what is due; a failure keeps what was read before (as the workers do)."""
        now = self.clock()
        if now - self._secrets_read_at >= self.secret_ttl_s:
            self._secrets_read_at = now
            await self.secrets.cache.refresh()  # logs and keeps the old values on failure
        if now - self._keys_read_at >= self.key_interval_s:
            self._keys_read_at = now
            try:
                if await self.keys.reload_if_rotated():
                    log.info("signing keys reloaded: key set version %d", self.keys.version)
            except Exception as error:  # noqa: BLE001 - the keys in hand still serve
                log.warning("signing key reload failed (%s)", type(error).__name__)


@dataclass(slots=True)
class LambdaServing:
    """The built app and what must be closed with it."""

    app: BufferedOnly
    upkeep: Upkeep
    container: AsyncContainer
    secrets: ResolvedSecrets
    channel: grpc.aio.Channel | None

    async def aclose(self) -> None:
        if self.channel is not None:
            await self.channel.close()
        await self.container.close()
        await self.secrets.aclose()


async def start_serving(settings: Settings) -> LambdaServing:
    """Resolve the secrets, build the container, check the database, build the HTTP app.

    As ``serve`` starts, less the servers and the workers: the same settings, secrets port,
    authentication and schema rules (an embedded SQLite database migrates itself, PostgreSQL
    must be migrated beforehand by ``ledgerd migrate``).
    """
    settings = lambda_settings(settings)
    settings, secrets = await resolve_settings(settings)
    container = build_container(settings, secrets=secrets)
    channel: grpc.aio.Channel | None = None
    try:
        engine = await container.get(AsyncEngine)
        await require_reachable(engine, settings.database_url)
        await ensure_schema(container, settings)
        forwarding = tls.forwarding(settings)
        channel = None if forwarding is None else forwarding.channel
        app, channel = await http_app.served_http_app(
            container, settings.gateway_forward_to, channel
        )
        upkeep = Upkeep(
            secrets,
            await container.get(KeyRingReloader),
            secret_ttl_s=settings.secret_ttl_seconds,
            key_interval_s=settings.key_reload_interval_seconds,
        )
    except BaseException:
        if channel is not None:
            await channel.close()
        await container.close()
        await secrets.aclose()
        raise
    if is_sqlite(settings.database_url):
        log.warning(
            "AWS Lambda on SQLite: each execution environment has its own database in its "
            "own file; for tests and trials only"
        )
    log.info("ledgerd on AWS Lambda: REST gateway only; run `ledgerd worker` for the outbox")
    services = services_of(ENABLED_CONTEXTS)
    return LambdaServing(BufferedOnly(app, services), upkeep, container, secrets, channel)
