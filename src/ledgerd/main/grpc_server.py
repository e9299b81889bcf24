"""Build and start the gRPC server: the ledger service, health checking and reflection."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from dishka import AsyncContainer
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ledgerd.ledger.entrypoints.grpc.service import LedgerService
from ledgerd.platform.api.grpc_interceptors import ErrorMappingInterceptor
from ledgerd.v1 import ledger_pb2, ledger_pb2_grpc

LEDGER_SERVICE = ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name


@dataclass(frozen=True, slots=True)
class RunningGrpcServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer

    async def stop(self, grace_s: float) -> None:
        """Refuse new calls, let calls in flight finish for up to ``grace_s``, then cancel."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)


async def start_grpc_server(container: AsyncContainer, address: str) -> RunningGrpcServer:
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    ledger_pb2_grpc.add_LedgerServiceServicer_to_server(await container.get(LedgerService), server)
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    reflection.enable_server_reflection(
        (LEDGER_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(address)
    await server.start()
    for service in ("", LEDGER_SERVICE):
        await checker.set(service, health_pb2.HealthCheckResponse.SERVING)
    return RunningGrpcServer(server, port, checker)
