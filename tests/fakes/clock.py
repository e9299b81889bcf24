"""A clock that only moves when a test moves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledgerd.kernel.clock import Clock

START = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


class ManualClock:
    """Implements ``Clock``: ``now()`` stays put until ``advance()`` (or ``step_back()``)."""

    def __init__(self, start: datetime = START) -> None:
        if start.utcoffset() != timedelta(0):
            msg = "the clock starts at an aware UTC instant"
            raise ValueError(msg)
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta`` and return the new instant."""
        if delta < timedelta(0):
            msg = "a clock does not go backwards"
            raise ValueError(msg)
        self._now += delta
        return self._now

    def step_back(self, delta: timedelta) -> datetime:
        """Move back by ``delta``, as a wall clock corrected by NTP can; the new instant."""
        if delta <= timedelta(0):
            msg = "a step back is a positive duration"
            raise ValueError(msg)
        self._now -= delta
        return self._now


def _conforms(clock: ManualClock) -> Clock:
    return clock
