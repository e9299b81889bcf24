import random

import pytest

from ledgerd.loadgen.latency import LatencyHistogram, bucket_of, upper_edge


def test_buckets_hold_every_value_within_one_percent() -> None:
    rng = random.Random(3)  # noqa: S311 - reproducible samples, not a secret
    values = [*range(2_000), *(rng.randrange(1, 10**10) for _ in range(20_000))]
    for micros in values:
        bucket = bucket_of(micros)
        assert upper_edge(bucket) >= micros
        assert bucket == 0 or upper_edge(bucket - 1) < micros
        assert (upper_edge(bucket) - micros) / max(micros, 1) < 0.008


def test_percentiles_of_a_known_distribution() -> None:
    histogram = LatencyHistogram()
    for millis in range(1, 1001):  # 1 ms .. 1000 ms, one each
        histogram.record(millis / 1000)
    summary = histogram.summary_ms()
    assert summary["p50"] == pytest.approx(500, rel=0.01)
    assert summary["p95"] == pytest.approx(950, rel=0.01)
    assert summary["p99"] == pytest.approx(990, rel=0.01)
    assert summary["max"] == 1000
    assert summary["mean"] == pytest.approx(500.5, rel=0.001)
    # Never below the truth: a percentile reports its bucket's upper edge.
    assert summary["p99"] >= 990


def test_merging_is_recording_everything_in_one() -> None:
    rng = random.Random(5)  # noqa: S311 - reproducible samples, not a secret
    samples = [rng.expovariate(100) for _ in range(5_000)]
    whole, left, right = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for index, seconds in enumerate(samples):
        whole.record(seconds)
        (left if index % 3 else right).record(seconds)
    left.merge(right)
    assert left == whole


def test_an_empty_histogram_reports_zeros() -> None:
    assert LatencyHistogram().summary_ms() == {
        "p50": 0,
        "p95": 0,
        "p99": 0,
        "max": 0,
        "mean": 0,
    }
