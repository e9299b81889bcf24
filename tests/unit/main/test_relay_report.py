"""How ``ledgerd outbox`` words the relays it finds recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledgerd.main.relay_report import NO_RELAY_ACTIVE, relay_lines
from ledgerd.platform.outbox.presence import STALE_AFTER
from ledgerd.platform.outbox.store import RelayIdentity, RelaySeen

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _seen(ago: timedelta, command: str = "serve") -> RelaySeen:
    relay = RelayIdentity(
        id=f"r-{ago}",
        publisher="hub",
        destination="in-process",
        host="box",
        pid=7,
        command=command,
        started_at=NOW - timedelta(days=2),
    )
    return RelaySeen(relay, NOW - ago)


def test_no_relay_recorded_says_none_is_active_and_what_runs_one() -> None:
    assert relay_lines([], NOW) == [NO_RELAY_ACTIVE]
    assert "`ledgerd worker`" in NO_RELAY_ACTIVE
    assert "`ledgerd serve` on SQLite" in NO_RELAY_ACTIVE


def test_an_active_relay_beside_a_stale_one_is_enough() -> None:
    lines = relay_lines([_seen(timedelta(seconds=1)), _seen(STALE_AFTER * 2, "worker")], NOW)
    stale = "stale: last active 30 s ago (likely dead)"
    assert lines == [
        "relay: hub (in-process) in serve, pid 7 on box, last active 1 s ago",
        f"relay: hub (in-process) in worker, pid 7 on box, {stale}",
    ]


@pytest.mark.parametrize(
    ("ago", "said"),
    [
        (timedelta(seconds=-3), "last active 0 s ago"),  # a clock a little ahead of ours
        (timedelta(seconds=119), "last active 119 s ago"),
        (timedelta(minutes=2), "last active 2 min ago"),
        (timedelta(minutes=119, seconds=59), "last active 119 min ago"),
        (timedelta(hours=23, minutes=59), "last active 23 h ago"),
    ],
)
def test_how_long_ago(ago: timedelta, said: str) -> None:
    assert said in relay_lines([_seen(ago)], NOW)[0]
