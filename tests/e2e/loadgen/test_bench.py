"""``ledgerd bench``'s engine against the real server: counts, invariants and the JSON result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ledgerd.loadgen import invariants
from ledgerd.loadgen.bench import EXIT_OK, BenchOptions, bench
from ledgerd.loadgen.config import GRPC, HTTP, RestClient, Workload
from ledgerd.loadgen.report import BenchReport
from tests.e2e.loadgen.support import Served, quiet, text_of

VERIFY = invariants.LEDGERD_VERIFY


async def _run(served: Served, tmp_path: Path, transport: str, **changes: object) -> BenchReport:
    output = tmp_path / "result.json"
    out, err = quiet(), quiet()
    status, report = await bench(
        served.config(transport, **changes), BenchOptions(output=output), out=out, err=err
    )
    assert report is not None, text_of(err)
    assert status == EXIT_OK, (text_of(out), text_of(err))
    assert "transfers/s" in text_of(out) or "calls/s" in text_of(out)
    document = json.loads(output.read_text())
    assert document == json.loads(json.dumps(report.document()))  # what was written is it
    return report


def _assert_all_checks_passed(report: BenchReport, *, verified: bool = False) -> None:
    checks = {check.name: check for check in report.checks}
    assert len(checks) == 4, checks
    assert all(check.ok for check in checks.values()), checks
    assert checks[VERIFY].skipped is not verified, checks[VERIFY]
    if verified:
        assert "hash chain intact" in checks[VERIFY].detail, checks[VERIFY]


async def test_single_transfers_over_grpc(served: Served, tmp_path: Path) -> None:
    # `ledgerd verify` on PostgreSQL here; on SQLite test_invariants sees it fail.
    verified = served.api.backend == "postgresql"
    database_url = served.database_url if verified else None
    report = await _run(served, tmp_path, GRPC, database_url=database_url)
    stats = report.stats
    assert (stats.requests, stats.transfers_ok, stats.transfers_failed) == (100, 100, 0)
    assert len(set(stats.acked_ids)) == 100
    assert stats.latency.total == 100
    assert not stats.errors
    _assert_all_checks_passed(report, verified=verified)
    assert report.provisioned is not None
    assert report.provisioned.accounts_created == 20


async def test_batches_over_rest_on_the_hot_account(served: Served, tmp_path: Path) -> None:
    # 100 transfers for 4 clients: 25 each, as 3 batches of 7 and one of 4.
    report = await _run(served, tmp_path, HTTP, workload=Workload.HOT, batch=7)
    stats = report.stats
    assert (stats.requests, stats.transfers_ok, stats.transfers_failed) == (16, 100, 0)
    assert len(set(stats.acked_ids)) == 100
    _assert_all_checks_passed(report)


async def test_rest_timed_by_httpx_instead(served: Served, tmp_path: Path) -> None:
    report = await _run(served, tmp_path, HTTP, rest_client=RestClient.HTTPX, batch=3)
    assert (report.stats.transfers_ok, report.stats.transfers_failed) == (100, 0)
    assert report.document()["config"]["rest_client"] == "httpx"
    _assert_all_checks_passed(report)


async def test_zipf_batches_over_grpc_then_again_on_the_same_ledger(
    served: Served, tmp_path: Path
) -> None:
    first = await _run(served, tmp_path, GRPC, workload=Workload.ZIPF, batch=10)
    assert first.stats.transfers_ok == 100
    # A second run finds the ledger and accounts there, and its keys are its own.
    second = await _run(served, tmp_path, GRPC, workload=Workload.ZIPF, batch=10)
    assert second.provisioned is not None
    assert (second.provisioned.accounts_existing, second.provisioned.accounts_created) == (20, 0)
    assert second.stats.transfers_ok == 100
    assert second.stats.replayed == 0
    assert not set(first.stats.acked_ids) & set(second.stats.acked_ids)
    _assert_all_checks_passed(second)


async def test_the_json_result_has_every_figure(served: Served, tmp_path: Path) -> None:
    report = await _run(served, tmp_path, HTTP)
    _assert_all_checks_passed(report)
    document: dict[str, Any] = json.loads((tmp_path / "result.json").read_text())
    assert document["schema"] == "ledgerd-bench/1"
    assert document["config"]["target"] == str(served.target(HTTP))
    assert document["config"]["workload"] == "uniform"
    assert document["machine"]["cpu_count"] >= 1
    assert document["machine"]["python"].startswith("3.")
    result = document["result"]
    assert result["transfers_ok"] == 100
    assert result["transfers_per_s"] > 0
    assert result["elapsed_s"] > 0
    latency = result["latency_ms"]
    assert set(latency) == {"p50", "p95", "p99", "max", "mean"}
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert result["errors"] == {}
    assert document["pgbench"] is None
    assert document["ratio_to_pgbench"] is None
    assert document["invariants"]["ok"] is True
    checks = document["invariants"]["checks"]
    assert [(c["ok"], c["skipped"]) for c in checks] == [(True, False)] * 3 + [(True, True)]


async def test_a_timed_run(served: Served, tmp_path: Path) -> None:
    report = await _run(served, tmp_path, GRPC, transfers=None, duration_s=0.5)
    assert report.stats.transfers_ok > 0
    assert 0.5 <= report.stats.elapsed_s < 5
    _assert_all_checks_passed(report)


async def test_trivial_runs_measure_the_client_alone(served: Served, tmp_path: Path) -> None:
    for transport in (GRPC, HTTP):
        report = await _run(served, tmp_path, transport, trivial=True, transfers=50)
        assert (report.stats.requests, report.stats.transfers_ok) == (50, 50)
        assert report.provisioned is None
        assert report.checks == []
        assert report.document()["result"]["unit"] == "calls"
