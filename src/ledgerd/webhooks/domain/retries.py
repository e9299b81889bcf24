"""When a failed delivery is tried again: exponential back-off with full jitter, then give up.

After the n-th failed attempt at an event the next waits a random time between 0 and
``min(max_delay, first_delay * 2**(n-1))`` ("full jitter": receivers that came back from an
outage are not hit by every sender at the same instant); after ``max_attempts`` failures the
event is dead-lettered. With the defaults (1 s, 10 min, 15 attempts) an endpoint is tried for
at most 57 minutes (about 28 on average) before an event is given up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

# 2**64 times any first delay is past any cap: the exponent stops growing there.
_DOUBLINGS_PAST_ANY_CAP = 64
# draw(low, high): a uniformly random number between the two (random.Random.uniform).
Draw = Callable[[float, float], float]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    first_delay_s: float = 1.0
    max_delay_s: float = 600.0
    max_attempts: int = 15

    def __post_init__(self) -> None:
        if self.first_delay_s <= 0 or self.max_delay_s < self.first_delay_s:
            msg = "the first delay is positive and at most the longest"
            raise ValueError(msg)
        if self.max_attempts < 1:
            msg = "an event is attempted once at least"
            raise ValueError(msg)

    def gives_up_after(self, failed_attempts: int) -> bool:
        """Whether an event that failed ``failed_attempts`` times in a row is dead-lettered."""
        return failed_attempts >= self.max_attempts

    def ceiling_s(self, failed_attempts: int) -> float:
        """The longest wait after the ``failed_attempts``-th failure (1 for the first)."""
        exponent = max(0, failed_attempts - 1)
        # Past this many doublings every delay is capped anyway; the cap keeps 2**n small.
        if exponent > _DOUBLINGS_PAST_ANY_CAP:
            return self.max_delay_s
        return min(self.max_delay_s, math.ldexp(self.first_delay_s, exponent))

    def delay_s(self, failed_attempts: int, draw: Draw) -> float:
        """How long to wait before the next attempt: full jitter under the ceiling."""
        return draw(0.0, self.ceiling_s(failed_attempts))
