"""The streaming context, as the composition root composes it.

Its providers (the event log on the outbox, the process's one hub, the stream tickets, the
gRPC servicer, the HTTP stream edges), its service (WatchLedger, CreateStreamTicket), its HTTP
endpoints (Server-Sent Events and WebSocket), its migrations (the tickets' table), the worker
that wakes the hub when events are committed, and the hook that ends every stream when
``serve`` starts stopping (open streams would otherwise hold the graceful stop for its whole
grace).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from typing import Any

from dishka import AsyncContainer, Provider, Scope, alias, provide
from starlette.types import ASGIApp

from ledgerd.kernel.clock import Clock
from ledgerd.ledger.application._lookups import ledger_not_found
from ledgerd.main.bounded_context import BackgroundWorker, BoundedContext, GrpcService, first_ended
from ledgerd.main.contexts.streaming_commands import add_streaming_commands
from ledgerd.main.relaying import listen_to_outbox
from ledgerd.main.settings import Settings
from ledgerd.platform.api.authentication import SingleUseTickets
from ledgerd.platform.api.pipeline import CallPipeline
from ledgerd.platform.db.engine import is_sqlite
from ledgerd.platform.outbox.commits import CommittedStreams
from ledgerd.platform.outbox.store import OutboxStore
from ledgerd.streaming.adapters.outbox_log import OutboxEventLog
from ledgerd.streaming.adapters.sql_tickets import SqlStreamTicketRepository
from ledgerd.streaming.adapters.ticket_tokens import HexTicketTokens
from ledgerd.streaming.application.hub import StreamHub
from ledgerd.streaming.application.shared_reads import SharedReads
from ledgerd.streaming.application.tickets import (
    IssueStreamTicket,
    RedeemStreamTicket,
    TicketTokens,
)
from ledgerd.streaming.domain.tickets import StreamTicketRepository
from ledgerd.streaming.entrypoints.api_access import STREAM_API_ACCESS
from ledgerd.streaming.entrypoints.api_examples import STREAM_API_EXAMPLES
from ledgerd.streaming.entrypoints.api_rules import STREAM_API_RULES
from ledgerd.streaming.entrypoints.cloud_events import RenderedEvents
from ledgerd.streaming.entrypoints.errors import STREAM_ERRORS
from ledgerd.streaming.entrypoints.grpc_service import StreamService
from ledgerd.streaming.entrypoints.http_streams import StreamEdge
from ledgerd.streaming.entrypoints.sse import ServerSentEvents
from ledgerd.streaming.entrypoints.websocket import WebSocketStreams
from ledgerd.v1 import streaming_pb2, streaming_pb2_grpc

_SERVICE = streaming_pb2.DESCRIPTOR.services_by_name["StreamService"]
WATCH_LEDGER = f"/{_SERVICE.full_name}/WatchLedger"
SSE_PATH = "/v1/ledgers/{ledger}/events:stream"
WEBSOCKET_PATH = "/v1/ledgers/{ledger}/events:ws"


class StreamingProvider(Provider):
    scope = Scope.APP

    @provide
    async def hub(self, store: OutboxStore, settings: Settings) -> AsyncIterator[StreamHub]:
        log = OutboxEventLog(store)
        hub = StreamHub(
            log,
            # Subscribers catching up from one position (a restart's resumptions) share a read,
            # and half the pool at most reads for those catching up: the rest is the writers'.
            catch_up_log=SharedReads(log, most_at_once=catch_up_reads(settings)),
            buffer_events=settings.stream_buffer_events,
            poll_interval_s=settings.stream_poll_interval_seconds,
        )
        yield hub
        await hub.aclose()

    tickets = provide(SqlStreamTicketRepository, provides=StreamTicketRepository)
    ticket_tokens = provide(HexTicketTokens, provides=TicketTokens)
    issue_ticket = provide(IssueStreamTicket)
    redeem_ticket = provide(RedeemStreamTicket)
    # What the pipeline's authentication redeems ``?ticket=`` with.
    single_use_tickets = alias(source=RedeemStreamTicket, provides=SingleUseTickets)

    @provide
    def service(
        self, hub: StreamHub, clock: Clock, issue_ticket: IssueStreamTicket
    ) -> StreamService:
        return StreamService(hub, clock, ledger_not_found, issue_ticket)

    @provide
    def edge(
        self, hub: StreamHub, pipeline: CallPipeline, clock: Clock, settings: Settings
    ) -> StreamEdge:
        return StreamEdge(
            hub=hub,
            pipeline=pipeline,
            clock=clock,
            not_found=ledger_not_found,
            rendered=RenderedEvents(),
            heartbeat_s=settings.stream_heartbeat_seconds,
        )


def catch_up_reads(settings: Settings) -> int:
    """How many reads of the log subscribers catching up may run at once: half the pool."""
    return max(1, settings.database_pool_size // 2)


def _providers() -> Sequence[Provider]:
    return (StreamingProvider(),)


@contextlib.asynccontextmanager
async def waking_the_hub(
    container: AsyncContainer, settings: Settings, command: str
) -> AsyncIterator[asyncio.Future[None]]:
    """Commits wake the hub: on PostgreSQL every process's, by NOTIFY; on SQLite, this one's.

    Either way a commit wakes the feed of the ledger it wrote to, not every watched ledger's:
    with many ledgers watched, a commit is one read of the log, not one per ledger.
    """
    del command
    hub = await container.get(StreamHub)
    stop = asyncio.Event()
    # PostgreSQL's NOTIFY names the ledger and reaches this process's own commits too; the
    # local signal (the embedded database has no other process) names it as well.
    stop_listening: Callable[[], None] | None = None

    async def until_stopped() -> None:
        await stop.wait()

    if is_sqlite(settings.database_url):
        stop_listening = (await container.get(CommittedStreams)).listen(hub.wake)
        listening: Coroutine[Any, Any, None] = until_stopped()
    else:
        listening = listen_to_outbox(container, settings, hub.wake_all, stop, wake_stream=hub.wake)
    tasks = [asyncio.create_task(listening, name="stream-listener")]
    try:
        yield first_ended(tasks)
    finally:
        stop.set()
        if stop_listening is not None:
            stop_listening()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def stream_endpoints(container: AsyncContainer) -> Mapping[str, ASGIApp]:
    """Server-Sent Events and WebSocket, by path template (``{ledger}`` is one path segment)."""
    edge = await container.get(StreamEdge)
    return {SSE_PATH: ServerSentEvents(edge), WEBSOCKET_PATH: WebSocketStreams(edge)}


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
            rules=STREAM_API_RULES,
            examples=STREAM_API_EXAMPLES,
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
    migrations=("ledgerd.streaming.adapters:migrations",),
    http_endpoints=stream_endpoints,
    before_drain=end_streams,
    unadmitted_methods=(WATCH_LEDGER,),
)
