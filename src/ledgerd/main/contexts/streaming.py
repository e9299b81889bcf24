"""The streaming context, as the composition root composes it.

Its providers (the event log on the outbox, the process's one hub, the gRPC servicer), its
service (WatchLedger, CreateStreamTicket), the worker that wakes the hub when events are
committed, and the hook that ends every stream when ``serve`` starts stopping (open streams
would otherwise hold the graceful stop for its whole grace).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from dishka import AsyncContainer, Provider, Scope, provide
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.kernel.clock import Clock
from ledgerd.ledger.application._lookups import ledger_not_found
from ledgerd.main.bounded_context import BackgroundWorker, BoundedContext, GrpcService, first_ended
from ledgerd.main.contexts.streaming_commands import add_streaming_commands
from ledgerd.main.secrets import ResolvedSecrets
from ledgerd.main.settings import Settings
from ledgerd.platform.concurrency.notifier import Notifier
from ledgerd.platform.db.engine import is_sqlite
from ledgerd.platform.outbox.listener import libpq_dsn, listen_for_commits
from ledgerd.platform.outbox.store import OutboxStore
from ledgerd.streaming.adapters.outbox_log import OutboxEventLog
from ledgerd.streaming.application.hub import StreamHub
from ledgerd.streaming.entrypoints.api_access import STREAM_API_ACCESS
from ledgerd.streaming.entrypoints.errors import STREAM_ERRORS
from ledgerd.streaming.entrypoints.grpc_service import StreamService
from ledgerd.v1 import streaming_pb2, streaming_pb2_grpc

_SERVICE = streaming_pb2.DESCRIPTOR.services_by_name["StreamService"]
WATCH_LEDGER = f"/{_SERVICE.full_name}/WatchLedger"


class StreamingProvider(Provider):
    scope = Scope.APP

    @provide
    async def hub(self, store: OutboxStore, settings: Settings) -> AsyncIterator[StreamHub]:
        hub = StreamHub(
            OutboxEventLog(store),
            buffer_events=settings.stream_buffer_events,
            poll_interval_s=settings.stream_poll_interval_seconds,
        )
        yield hub
        await hub.aclose()

    @provide
    def service(self, hub: StreamHub, clock: Clock) -> StreamService:
        return StreamService(hub, clock, ledger_not_found)


def _providers() -> Sequence[Provider]:
    return (StreamingProvider(),)


@contextlib.asynccontextmanager
async def waking_the_hub(
    container: AsyncContainer, settings: Settings, command: str
) -> AsyncIterator[asyncio.Future[None]]:
    """Commits wake the hub: on PostgreSQL every process's, by NOTIFY; on SQLite, this one's."""
    del command
    hub = await container.get(StreamHub)
    commits = await container.get(Notifier)
    stop = asyncio.Event()

    async def on_local_commits() -> None:
        seen = commits.version
        while True:
            seen = await commits.changed(seen)
            hub.wake_all()

    # PostgreSQL's NOTIFY names the ledger and reaches this process's own commits too; the
    # local signal does not say which ledger, so it serves only the embedded database.
    tasks = []
    if is_sqlite(settings.database_url):
        tasks.append(asyncio.create_task(on_local_commits(), name="stream-local-commits"))
    else:
        engine = await container.get(AsyncEngine)
        current = (await container.get(ResolvedSecrets)).database_url(settings)
        tasks.append(
            asyncio.create_task(
                listen_for_commits(
                    (lambda: libpq_dsn(make_url(current())))
                    if current is not None
                    else libpq_dsn(engine.url),
                    hub.wake_all,
                    stop,
                    wake_stream=hub.wake,
                ),
                name="stream-listener",
            )
        )
    try:
        yield first_ended(tasks)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def end_streams(container: AsyncContainer) -> None:
    """Every open stream ends now: its client resumes elsewhere from the last sequence it got."""
    await (await container.get(StreamHub)).aclose()


STREAMING = BoundedContext(
    name="streaming",
    providers=_providers,
    services=(
        GrpcService(
            descriptor=_SERVICE,
            servicer=StreamService,
            add_to_server=streaming_pb2_grpc.add_StreamServiceServicer_to_server,
            access=STREAM_API_ACCESS,
            hidden=ledger_not_found,
        ),
    ),
    workers=(
        BackgroundWorker(
            name="stream wake-ups", run=waking_the_hub, in_worker=lambda _settings: False
        ),
    ),
    commands=add_streaming_commands,
    error_codes=STREAM_ERRORS,
    before_drain=end_streams,
    unadmitted_methods=(WATCH_LEDGER,),
)
