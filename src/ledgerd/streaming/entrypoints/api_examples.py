"""StreamService's HTTP operations as the API reference shows them (and a test replays them).

They follow the ledger's examples (``ledgerd.ledger.entrypoints.grpc.api_examples``) on the same
server, whose clock stands at 2030-01-02T03:04:05.123456Z: the ``shop`` ledger exists. A ticket
is random: the replaying test takes its 64 hex digits for made up by the server, as ids are.
"""

from __future__ import annotations

from typing import Final

from ledgerd.kernel.rules import ApiExample

STREAM_API_EXAMPLES: Final = {
    "CreateStreamTicket": ApiExample(
        method="POST",
        path="/v1/ledgers/shop/events:ticket",
        request={},
        response={
            "ticket": "9c1e4b7a2f0d83e65a47c1b09d2e7f3a6b58c04e1d9f27a3b6c80e5d4a1f7b92",
            "expires_at": "2030-01-02T03:04:35.123456Z",
        },
    ),
}
