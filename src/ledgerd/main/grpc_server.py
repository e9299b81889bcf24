"""Build and start the gRPC server: the enabled contexts' services, health and reflection."""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from dishka import AsyncContainer
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ledgerd.main.bounded_context import GrpcService, services_of
from ledgerd.main.contexts import ENABLED_CONTEXTS
from ledgerd.main.tls import ServerTls
from ledgerd.platform.api.grpc_pipeline import PipelineInterceptor
from ledgerd.platform.api.grpc_reflection import enable_reflection
from ledgerd.platform.api.pipeline import CallPipeline
from ledgerd.platform.listening import CannotListenError, probe_bind, why_not

# grpc's core keeps the calls that have arrived but that the Python server has not picked up
# yet in a backlog (grpc.aio picks them up one at a time, a turn of the event loop each). Past
# 1,000 of them, by default, it drops new calls at random, and all of them past 3,000; their
# clients see a bare CANCELLED. Issue 11 saw 21-24 % of 3,000 simultaneous calls end so. The
# admission step answers overload properly, but only for the calls it sees, so the backlog must
# hold a whole burst until it is picked up (and refused, if need be: well under a millisecond a
# call). It stays bounded: a call waiting there holds about 15 KB (measured: 10,000 of them
# took 150 MB), so past MAX_PENDING_CALLS grpc still drops new calls, as a last resort.
# HTTP/2's per-connection stream limit (grpc.max_concurrent_streams) stays unset, as grpc
# leaves it (no limit advertised): it played no part (one connection or eight, the same share
# was dropped), and with one a connection's excess calls would wait in its client, unanswered,
# instead of being refused with a hint; it bounds nothing across connections either.
MAX_PENDING_CALLS = 10_000
_OPTIONS = (
    ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),
    # The same hard limit: no random drops below it, every new call dropped above it.
    ("grpc.server.max_pending_requests_hard_limit", MAX_PENDING_CALLS),
)
ADDRESS_SETTING = "LEDGERD_GRPC_ADDRESS"
_ADDRESS_IN_USE_HINT = (
    f"; set {ADDRESS_SETTING} to a free HOST:PORT (HOST:0 picks one), or "
    "LEDGERD_GRPC_REUSE_PORT=true in every process of one deployment that shares it"
)


@dataclass(frozen=True, slots=True)
class RunningGrpcServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    # The full names of the services it serves (health checking reports each).
    services: tuple[str, ...] = ()

    async def stop(self, grace_s: float) -> None:
        """Refuse new calls, let calls in flight finish for up to ``grace_s``, then cancel."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)


def _refusal(address: str, error: OSError) -> CannotListenError:
    reason = why_not(error)
    hint = _ADDRESS_IN_USE_HINT if error.errno == errno.EADDRINUSE else ""
    return CannotListenError(ADDRESS_SETTING, address, reason + hint)


async def start_grpc_server(
    container: AsyncContainer,
    address: str,
    *,
    reuse_port: bool = False,
    services: Sequence[GrpcService] | None = None,
    tls: ServerTls | None = None,
) -> RunningGrpcServer:
    """The server, listening on ``address``; ``CannotListenError`` if it cannot.

    It serves ``services`` (by default every service of the enabled contexts), each with its
    servicer from the container, beside health checking and reflection.

    grpc shares a port with any other process that asks (``SO_REUSEPORT``) unless told not
    to: two servers on one port, each with its own database, would each answer some of the
    channels. Only ``reuse_port`` (processes of one deployment) allows that.

    With ``tls`` it listens with TLS (``main/tls.py``), else in plaintext; when that requires
    client certificates, each call carries its certificate's identity to authentication.
    """
    try:
        probe_bind(address, reuse_port=reuse_port)
    except OSError as error:
        # grpc's own failure names neither the cause nor the setting: ask before it binds.
        raise _refusal(address, error) from None
    server = grpc.aio.server(
        # Every call passes the call pipeline, the one the REST gateway's calls pass too.
        interceptors=[
            PipelineInterceptor(
                await container.get(CallPipeline),
                peer_certificates=tls is not None and tls.requires_client_certificates,
            )
        ],
        options=(*_OPTIONS, ("grpc.so_reuseport", int(reuse_port))),
    )
    served = services_of(ENABLED_CONTEXTS) if services is None else tuple(services)
    for service in served:
        service.add_to_server(await container.get(service.servicer), server)
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    names = tuple(service.name for service in served)
    enable_reflection(server, (*names, health.SERVICE_NAME))
    try:
        port = (
            server.add_insecure_port(address)
            if tls is None
            else server.add_secure_port(address, tls.grpc)
        )
    except RuntimeError:
        # Taken between the probe and now: grpc has logged its reason (to stderr) already.
        await server.stop(None)  # else its finaliser tries to, once the event loop is closed
        raise CannotListenError(ADDRESS_SETTING, address, "grpc could not bind it") from None
    await server.start()
    for name in ("", *names):
        await checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningGrpcServer(server, port, checker, names)
