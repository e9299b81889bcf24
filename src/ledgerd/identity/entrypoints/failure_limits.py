"""Brute-force limits: failed authentications per client id, user and source address.

A sliding window: a key (``client:<id>``, ``user:<name>``, ``address:<ip>``) with ``limit``
failures within the last ``window`` is refused until the oldest of them leaves the window; the
answer is 429 with that wait as ``Retry-After``. While refused, even the right secret is not
checked, so guessing cannot go on behind the refusal. Only failures count: a client that
authenticates correctly is never slowed down by its own successes.

The key is the id as sent, whether or not such a client exists, so the limit never tells which
ids exist. The record is in-process (each server counts alone; behind N servers an attacker gets
N times the budget, still far below what guessing a 256-bit secret needs) and bounded: past
``max_keys`` the least recently failed key is forgotten.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class FailureLimit:
    limit: int
    window: timedelta

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window <= timedelta(0):
            msg = "a failure limit needs a positive count and window"
            raise ValueError(msg)


# Ten failures in five minutes per client id, user or address: a client whose configuration
# holds an old secret fails a few times, never ten in a row that fast; an attacker gets two
# guesses a minute, nothing against a 256-bit secret and little against a fair password.
DEFAULT_FAILURE_LIMIT = FailureLimit(limit=10, window=timedelta(minutes=5))


class FailureLimiter:
    def __init__(
        self,
        limit: FailureLimit,
        *,
        max_keys: int = 100_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit, self._window = limit.limit, limit.window.total_seconds()
        self._max_keys, self._monotonic = max_keys, monotonic
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, keys: Iterable[str]) -> int | None:
        """Whole seconds to wait if any of ``keys`` is over its limit now, else None."""
        now = self._monotonic()
        waits = [wait for key in keys if (wait := self._wait(key, now)) is not None]
        return max(waits) if waits else None

    def record_failure(self, keys: Iterable[str]) -> None:
        now = self._monotonic()
        for key in keys:
            failures = self._failures.get(key)
            if failures is None:
                failures = self._failures[key] = deque()
            self._failures.move_to_end(key)
            failures.append(now)
            while len(failures) > self._limit:
                failures.popleft()
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def _wait(self, key: str, now: float) -> int | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        if len(failures) < self._limit:
            return None
        return max(1, math.ceil(failures[0] + self._window - now))
