"""StreamService over gRPC: WatchLedger streams a ledger's events as they are committed.

CreateStreamTicket hands a browser the single-use ticket its Server-Sent Events or WebSocket
stream opens with (REST ``POST /v1/ledgers/{ledger}/events:ticket``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.timestamp_pb2 import Timestamp

from ledgerd.kernel.clock import Clock
from ledgerd.kernel.principal import current_principal
from ledgerd.streaming.application.hub import StreamHub
from ledgerd.streaming.application.tickets import IssueStreamTicket
from ledgerd.streaming.domain.events import StreamEvent
from ledgerd.streaming.entrypoints.watching import (
    NotFound,
    stream_filter,
    subscribe,
    until_credentials_expire,
)
from ledgerd.v1 import streaming_pb2 as pb
from ledgerd.v1 import streaming_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
_TYPE_URL_PREFIX = "type.googleapis.com/"


class StreamService(streaming_pb2_grpc.StreamServiceServicer):
    def __init__(
        self, hub: StreamHub, clock: Clock, not_found: NotFound, issue_ticket: IssueStreamTicket
    ) -> None:
        self._hub = hub
        self._clock = clock
        self._not_found = not_found
        self._issue_ticket = issue_ticket

    async def WatchLedger(  # noqa: N802 - the RPC's name
        self, request: pb.WatchLedgerRequest, context: Context
    ) -> AsyncIterator[pb.StreamedEvent]:
        del context
        wanted = stream_filter(request.accounts, request.types)
        after = request.after if request.HasField("after") else None
        subscription = await subscribe(self._hub, request.ledger, wanted, after, self._not_found)
        events = until_credentials_expire(subscription, self._clock)
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    yield streamed_event(event)
        finally:
            await subscription.aclose()

    async def CreateStreamTicket(  # noqa: N802 - the RPC's name
        self, request: pb.CreateStreamTicketRequest, context: Context
    ) -> pb.StreamTicket:
        del context
        # The pipeline checked the caller's grant of the ledger; a caller granted every ledger
        # still gets a ticket only for one that exists.
        if request.ledger and await self._hub.log.last_sequence(request.ledger) is None:
            raise self._not_found(request.ledger)
        issued = await self._issue_ticket(current_principal(), request.ledger)
        expires_at = Timestamp()
        expires_at.FromDatetime(issued.expires_at)
        return pb.StreamTicket(ticket=issued.ticket, expires_at=expires_at)


def streamed_event(event: StreamEvent) -> pb.StreamedEvent:
    """The event as WatchLedger sends it; the payload is the log's protobuf bytes, as they are."""
    time = Timestamp()
    time.FromDatetime(event.time)
    return pb.StreamedEvent(
        ledger=event.ledger,
        sequence=event.sequence,
        id=event.id,
        type=event.type,
        subject=event.subject,
        time=time,
        payload=AnyMessage(type_url=_TYPE_URL_PREFIX + event.type, value=event.data),
    )
