"""When a write last committed on an engine: evidence that the database takes writes.

The write probe (``health.py``) asks SQLite for its write lock. Under a steady stream of
postings that lock is almost never free at the moment the probe asks, and SQLite's busy handler
polls instead of queueing, so the probe starved and reported a busy database as one that
cannot take writes (NOT_SERVING right after a flood of calls). A write that committed a moment
ago answers the probe's question directly, and costs nothing to ask.
"""

from __future__ import annotations

import time
import weakref

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine


class WriteActivity:
    def __init__(self) -> None:
        self._last_commit: float | None = None  # time.monotonic() of the last write committed

    def committed(self) -> None:
        self._last_commit = time.monotonic()

    def committed_within(self, seconds: float) -> bool:
        last = self._last_commit
        return last is not None and time.monotonic() - last <= seconds


# Keyed by the sync engine, which lives exactly as long as the AsyncEngine around it.
_BY_ENGINE: weakref.WeakKeyDictionary[Engine, WriteActivity] = weakref.WeakKeyDictionary()


def write_activity(engine: AsyncEngine) -> WriteActivity:
    """The one record of ``engine``'s committed writes (created on first use)."""
    activity = _BY_ENGINE.get(engine.sync_engine)
    if activity is None:
        activity = _BY_ENGINE[engine.sync_engine] = WriteActivity()
    return activity
