"""Where events go, said where a user looks: `serve` on PostgreSQL, and `ledgerd outbox`.

`ledgerd outbox` shows the relays the database has recorded, not its own environment's
settings: run without the worker's LEDGERD_EVENTS_PUBLISHER, it still names the worker's
publisher, and once the worker has stopped it says that no relay is active.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid

from ledgerd.main.relay_report import NO_RELAY_ACTIVE
from tests.e2e.grpc.test_serve import LEDGERD, ledgerd_serve, says
from tests.e2e.test_cli import COMMAND_TIMEOUT_S
from tests.e2e.test_relaying_processes import (
    GRACE_S,
    WORKER_STOPPED,
    _delete_nats_stream,
    ledgerd_worker,
)
from tests.integration.messaging.test_nats import SHARED_NATS_URL

NO_RELAY = "no outbox relay in this process (LEDGERD_RELAY_IN_SERVE)"


async def test_serve_on_postgres_says_the_worker_relays_events(migrated_postgres_url: str) -> None:
    async with ledgerd_serve(migrated_postgres_url) as served:
        served.process.send_signal(signal.SIGTERM)
        assert await served.wait_for_exit() == 0, served.log
    notices = [line for line in served.output if NO_RELAY in line]
    assert len(notices) == 1, served.log
    assert "`ledgerd worker`" in notices[0]


def _outbox_report(database_url: str) -> list[str]:
    """`ledgerd outbox`'s lines, run with no publisher setting of its own."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"LEDGERD_EVENTS_PUBLISHER", "LEDGERD_NATS_URL"}
    }
    report = subprocess.run(  # noqa: S603 - our own console script with fixed arguments
        [str(LEDGERD), "outbox"],
        env={**environment, "LEDGERD_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert report.returncode == 0, report.stderr
    return report.stdout.splitlines()


def _relays(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("relay: ")]


async def test_outbox_names_the_running_worker_and_sees_it_stop(migrated_postgres_url: str) -> None:
    assert _outbox_report(migrated_postgres_url)[0] == NO_RELAY_ACTIVE

    tag = uuid.uuid4().hex[:12]
    stream = f"LEDGERD_E2E_{tag.upper()}"
    try:
        async with ledgerd_worker(
            migrated_postgres_url,
            events_publisher="nats",
            nats_url=SHARED_NATS_URL,
            nats_stream=stream,
            nats_subject_prefix=f"ledgerd.e2e{tag}.events",
            shutdown_grace_seconds=str(GRACE_S),
        ) as worker:
            # The worker records itself before it says it is running.
            running = await asyncio.to_thread(_outbox_report, migrated_postgres_url)
            assert NO_RELAY_ACTIVE not in running
            [relay] = _relays(running)
            assert relay.startswith(f"relay: nats ({SHARED_NATS_URL}) in worker, ")
            assert f"pid {worker.process.pid} on " in relay
            assert relay.endswith(" s ago")
            assert "stale" not in relay

            worker.process.send_signal(signal.SIGTERM)
            assert await worker.wait_for_exit() == 0, worker.log
            assert says(worker.output[-1], WORKER_STOPPED), worker.log
    finally:
        await _delete_nats_stream(stream)

    stopped = await asyncio.to_thread(_outbox_report, migrated_postgres_url)
    assert _relays(stopped) == []
    assert stopped[0] == NO_RELAY_ACTIVE


async def test_outbox_names_the_relay_inside_serve_on_sqlite(sqlite_url: str) -> None:
    async with ledgerd_serve(sqlite_url, relay_in_serve="auto", events_publisher="hub") as served:
        # Said once the relay runs, and so has recorded itself.
        await served.read_until(lambda line: says(line, "relay outbox events to hub"))
        running = await asyncio.to_thread(_outbox_report, sqlite_url)
        [relay] = _relays(running)
        assert relay.startswith("relay: hub (in-process) in serve, ")
        assert f"pid {served.process.pid} on " in relay
        served.process.send_signal(signal.SIGTERM)
        assert await served.wait_for_exit() == 0, served.log
    assert _outbox_report(sqlite_url)[0] == NO_RELAY_ACTIVE
