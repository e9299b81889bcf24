"""SIGTERM to ``ledgerd serve`` with open streams: they end at once, saying where to resume.

And the process exits 0, well within its shutdown grace (open streams would otherwise hold it).
"""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.grpc.test_serve import ledgerd_serve
from tests.e2e.streams.support import LEDGER, Books, next_events, sse_messages, ws_events, ws_json
from tests.security.deployment import REST_LINE

# Far longer than the streams may take to end: a server waiting on them would show it.
GRACE_S = 20


async def test_sigterm_ends_open_streams_with_their_positions_and_exits_0(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/served.db"
    async with ledgerd_serve(url, shutdown_grace_seconds=str(GRACE_S)) as served:
        rest = REST_LINE.match(await served.read_until(lambda line: bool(REST_LINE.match(line))))
        assert rest is not None
        served.drain()
        base = rest.group(1)
        async with httpx.AsyncClient(base_url=base, timeout=GRACE_S) as client:
            books = Books(client)
            await books.open()
            await books.pay()
            path = f"/v1/ledgers/{LEDGER}/events:stream"
            ws = base.replace("http://", "ws://") + f"/v1/ledgers/{LEDGER}/events:ws"
            async with (
                client.stream("GET", path, params={"after": "3"}) as response,
                connect(ws) as socket,
            ):
                messages = sse_messages(response)
                await next_events(messages, 2)
                await socket.send('{"type": "subscribe", "id": "s", "after": 4}')
                await ws_json(socket)
                await ws_events(socket, 1)

                started = time.monotonic()
                served.process.send_signal(signal.SIGTERM)
                ended = (await next_events(messages, 1))[0]
                closing = await ws_json(socket)
                with contextlib.suppress(ConnectionClosed):
                    await socket.recv()
                took_s = time.monotonic() - started
            exit_code = await served.wait_for_exit()

    assert exit_code == 0, served.log
    assert took_s < GRACE_S / 4, took_s
    assert ended.event == "error"
    assert ended.json["code"] == "STREAM_ENDED"
    assert ended.json["details"]["position"] == "5"
    assert closing["type"] == "closing"
    assert closing["code"] == "STREAM_ENDED"
    assert closing["positions"] == {"s": 5}
    assert socket.close_code == 1012
    assert "Traceback" not in served.log
