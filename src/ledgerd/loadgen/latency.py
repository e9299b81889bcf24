"""A latency histogram that merges across clients and processes (HDR-style buckets).

Exact up to 256 µs; above, each power of two is cut into 128 buckets, so a reported
percentile is within 0.8% of the true value whatever the range, in constant memory per
distinct bucket and O(1) per sample. Percentiles report a bucket's upper edge (never
flattering), capped by the exact maximum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

_SUB_BITS = 8
_EXACT_BELOW = 1 << _SUB_BITS
_HALF = _SUB_BITS - 1


def bucket_of(micros: int) -> int:
    if micros < _EXACT_BELOW:
        return micros
    shift = micros.bit_length() - _SUB_BITS
    return (shift << _HALF) + (micros >> shift)


def upper_edge(bucket: int) -> int:
    """The largest value (µs) that falls in ``bucket``."""
    if bucket < _EXACT_BELOW:
        return bucket
    shift = (bucket >> _HALF) - 1
    mantissa = bucket - (shift << _HALF)
    return ((mantissa + 1) << shift) - 1


@dataclass(slots=True)
class LatencyHistogram:
    counts: dict[int, int] = field(default_factory=dict)
    total: int = 0
    sum_us: int = 0
    max_us: int = 0

    def record(self, seconds: float) -> None:
        micros = max(0, round(seconds * 1_000_000))
        bucket = bucket_of(micros)
        self.counts[bucket] = self.counts.get(bucket, 0) + 1
        self.total += 1
        self.sum_us += micros
        self.max_us = max(self.max_us, micros)

    def merge(self, other: LatencyHistogram) -> None:
        for bucket, count in other.counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + count
        self.total += other.total
        self.sum_us += other.sum_us
        self.max_us = max(self.max_us, other.max_us)

    def percentile_us(self, percent: float) -> int:
        """The smallest recorded bucket edge at or below which ``percent`` of samples fall."""
        if self.total == 0:
            return 0
        rank = max(1, math.ceil(self.total * percent / 100))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return min(upper_edge(bucket), self.max_us)
        return self.max_us

    def summary_ms(self) -> dict[str, float]:
        """p50, p95, p99, max and mean in milliseconds, as the JSON result reports them."""
        mean_us = self.sum_us / self.total if self.total else 0.0
        figures = {
            "p50": self.percentile_us(50),
            "p95": self.percentile_us(95),
            "p99": self.percentile_us(99),
            "max": self.max_us,
            "mean": mean_us,
        }
        return {name: round(value / 1000, 3) for name, value in figures.items()}
