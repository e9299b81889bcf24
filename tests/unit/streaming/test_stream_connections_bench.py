"""bench/stream_connections.py's clients count what a real server sends them, and only that.

The benchmark is not part of the suite (docs/benchmarks.md); its figures are only as good as
its two client protocols' counting, checked here on the bytes a server writes: an SSE event
split across reads, heartbeats, and websockets' own server protocol for the WebSocket side
(its handshake, a ping the client must answer, a refusal).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "stream_connections.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_stream_connections", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class FakeTransport:
    """The socket's edge: what the client wrote."""

    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data

    def take(self) -> bytes:
        data, self.written = self.written, b""
        return data


def _sse_event(sequence: int) -> bytes:
    return f"id: {sequence}\nevent: ledgerd.v1.TransferPosted\ndata: {{}}\n\n".encode()


async def test_sse_counts_each_event_once_even_split_across_reads(bench: ModuleType) -> None:
    connection: Any = bench._SseConnection(b"GET / HTTP/1.1\r\n\r\n")
    transport = FakeTransport()
    connection.connection_made(transport)
    assert transport.written.startswith(b"GET ")
    connection.data_received(b"HTTP/1.1 200 OK\r\n\r\nretry: 2000\n\n")
    assert connection.ready.done()
    first, second = _sse_event(1), _sse_event(2)
    cut = first.index(b"Posted") + 2  # the marker split between two reads
    connection.data_received(first[:cut])
    assert connection.received == []
    connection.data_received(first[cut:] + b": ping\n\n" + second)
    assert len(connection.received) == 2


async def test_ws_subscribes_counts_events_and_answers_pings(bench: ModuleType) -> None:
    connection: Any = bench._WsConnection("ws://127.0.0.1:1/v1/ledgers/conns/events:ws")
    transport = FakeTransport()
    connection.connection_made(transport)
    server = ServerProtocol()
    server.receive_data(transport.take())
    [request] = server.events_received()
    assert isinstance(request, Request)
    server.send_response(server.accept(request))
    connection.data_received(b"".join(server.data_to_send()))
    server.receive_data(transport.take())
    [subscribe] = server.events_received()
    assert isinstance(subscribe, Frame)
    assert json.loads(bytes(subscribe.data))["type"] == "subscribe"
    assert not connection.ready.done()
    server.send_text(b'{"type": "subscribed", "subscription": "s", "after": 4}')
    server.send_text(b'{"type":"event","subscription":"s","sequence":5,"event":{}}')
    server.send_ping(b"beat")
    connection.data_received(b"".join(server.data_to_send()))
    assert connection.ready.done()
    assert len(connection.received) == 1
    server.receive_data(transport.take())
    [pong] = server.events_received()
    assert isinstance(pong, Frame)
    assert (pong.opcode, pong.data) == (Opcode.PONG, b"beat")


async def test_ws_refused_after_the_handshake_is_a_failure_not_a_wait(bench: ModuleType) -> None:
    connection: Any = bench._WsConnection("ws://127.0.0.1:1/v1/ledgers/conns/events:ws")
    transport = FakeTransport()
    connection.connection_made(transport)
    server = ServerProtocol()
    server.receive_data(transport.take())
    [request] = server.events_received()
    assert isinstance(request, Request)
    server.send_response(server.accept(request))
    refusal = {"type": "error", "subscription": None, "code": "UNAVAILABLE"}
    server.send_text(json.dumps(refusal).encode())
    server.send_close(1008, "UNAVAILABLE")
    # All in one read, as a server that accepts and refuses at once sends it.
    connection.data_received(b"".join(server.data_to_send()))
    with pytest.raises(ConnectionError, match="UNAVAILABLE"):
        connection.ready.result()
