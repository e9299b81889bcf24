import pytest

from ledgerd.loadgen.config import (
    BenchConfig,
    BenchConfigError,
    Target,
    Workload,
    parse_duration,
    parse_target,
)
from ledgerd.loadgen.runner import plan_processes

TARGET = Target("grpc", "127.0.0.1", 50051)


def test_targets() -> None:
    assert parse_target("grpc://127.0.0.1:50051") == TARGET
    rest = parse_target("http://localhost:8080/")
    assert (rest.base_url, rest.address, str(rest)) == (
        "http://localhost:8080",
        "localhost:8080",
        "http://localhost:8080",
    )
    for bad in ("https://h:1", "grpc://h", "h:1", "http://h:1/v1", "http://h:1?x=1"):
        with pytest.raises(BenchConfigError):
            parse_target(bad)


def test_durations() -> None:
    assert parse_duration("20s") == 20
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2m") == 120
    assert parse_duration(" 1.5 ") == 1.5
    for bad in ("", "0s", "-1s", "1h", "soon"):
        with pytest.raises(BenchConfigError):
            parse_duration(bad)


def test_a_run_is_bounded_by_time_or_by_count_not_both() -> None:
    with pytest.raises(BenchConfigError, match="either"):
        BenchConfig(TARGET, duration_s=None, transfers=None)
    with pytest.raises(BenchConfigError, match="either"):
        BenchConfig(TARGET, duration_s=1, transfers=1)


def test_the_description_hides_the_database_password() -> None:
    config = BenchConfig(
        TARGET, workload=Workload.HOT, database_url="postgresql+asyncpg://u:s3cret@h:5432/db"
    )
    described = config.describe()
    assert described["database_url"] == "postgresql+asyncpg://u:***@h:5432/db"
    assert (described["target"], described["workload"]) == ("grpc://127.0.0.1:50051", "hot")


def test_clients_and_transfers_are_dealt_out_evenly() -> None:
    config = BenchConfig(TARGET, clients=7, processes=3, duration_s=None, transfers=100)
    plans = plan_processes(config, "run")
    assert [plan.clients for plan in plans] == [(0, 3, 6), (1, 4), (2, 5)]
    quotas = [quota for plan in plans for quota in plan.quotas or ()]
    assert sum(quotas) == 100
    assert max(quotas) - min(quotas) <= 1
    timed = plan_processes(BenchConfig(TARGET, clients=2, processes=2), "run")
    assert [plan.quotas for plan in timed] == [None, None]
