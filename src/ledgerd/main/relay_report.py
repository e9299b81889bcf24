"""What ``ledgerd outbox`` says about the relays: the ones running, as they record themselves."""

from __future__ import annotations

from datetime import datetime, timedelta

from ledgerd.platform.outbox.presence import STALE_AFTER
from ledgerd.platform.outbox.store import RelaySeen

NO_RELAY_ACTIVE = (
    "no relay active: events wait in the outbox until one runs "
    "(`ledgerd worker` with a broker in LEDGERD_EVENTS_PUBLISHER, or `ledgerd serve` on SQLite)"
)


def relay_lines(relays: list[RelaySeen], now: datetime) -> list[str]:
    """A line per relay recorded (stale ones marked), and one more if none is active."""
    lines = [_line(seen, now) for seen in relays]
    if all(_stale(seen, now) for seen in relays):
        lines.append(NO_RELAY_ACTIVE)
    return lines


def _stale(seen: RelaySeen, now: datetime) -> bool:
    return now - seen.last_seen_at > STALE_AFTER


def _line(seen: RelaySeen, now: datetime) -> str:
    relay = seen.relay
    activity = f"last active {_ago(now - seen.last_seen_at)}"
    if _stale(seen, now):
        activity = f"stale: {activity} (likely dead)"
    return (
        f"relay: {relay.publisher} ({relay.destination}) in {relay.command}, "
        f"pid {relay.pid} on {relay.host}, {activity}"
    )


def _ago(age: timedelta) -> str:
    # Another host's clock may run a little ahead of ours: never "-1 s ago".
    seconds = max(round(age.total_seconds()), 0)
    if seconds < 120:  # noqa: PLR2004 - up to two minutes, in seconds
        return f"{seconds} s ago"
    if seconds < 7200:  # noqa: PLR2004 - up to two hours, in minutes
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"
