"""``ledgerd serve`` says so when it listens beyond this machine (issue 11, item 8)."""

from __future__ import annotations

import re
import signal
from pathlib import Path

from tests.e2e.grpc.test_serve import STOPPED, ledgerd_serve, says

BEYOND = re.compile(r" WARNING ledgerd\.platform\.listening: (LEDGERD_\w+)=(\S+) listens beyond")


async def test_serve_warns_once_for_a_non_loopback_address_and_not_for_loopback(
    tmp_path: Path,
) -> None:
    # gRPC on 127.0.0.1:0 (ledgerd_serve's default), HTTP on every interface.
    url = f"sqlite+aiosqlite:///{tmp_path}/listen.db"
    async with ledgerd_serve(url, http_address="0.0.0.0:0") as served:
        served.process.send_signal(signal.SIGTERM)
        assert await served.wait_for_exit() == 0, served.log

    warnings = [found.groups() for line in served.output if (found := BEYOND.search(line))]
    assert warnings == [("LEDGERD_HTTP_ADDRESS", "0.0.0.0:0")], served.log
    assert says(served.output[-1], STOPPED), served.log
