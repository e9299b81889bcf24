"""Where events go, said where a user looks: `serve` on PostgreSQL, and `ledgerd outbox`."""

from __future__ import annotations

import signal

from tests.e2e.grpc.test_serve import ledgerd_serve
from tests.e2e.test_cli import ledgerd

NO_RELAY = "no outbox relay in this process (LEDGERD_RELAY_IN_SERVE)"


async def test_serve_on_postgres_says_the_worker_relays_events(postgres_url: str) -> None:
    assert ledgerd(postgres_url, "migrate").returncode == 0
    async with ledgerd_serve(postgres_url) as served:
        served.process.send_signal(signal.SIGTERM)
        assert await served.wait_for_exit() == 0, served.log
    notices = [line for line in served.output if NO_RELAY in line]
    assert len(notices) == 1, served.log
    assert "`ledgerd worker`" in notices[0]


def test_outbox_names_the_publisher_and_where_it_comes_from(postgres_url: str) -> None:
    assert ledgerd(postgres_url, "migrate").returncode == 0
    default = ledgerd(postgres_url, "outbox")
    assert default.returncode == 0, default.stderr
    assert "publisher: hub (LEDGERD_EVENTS_PUBLISHER as set for this command" in default.stdout
    assert "events are relayed by `ledgerd worker` with a broker set" in default.stdout
