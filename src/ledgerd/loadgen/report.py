"""The run's outcome: the JSON result document and the summary table printed after a run."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ledgerd.loadgen.config import BenchConfig
from ledgerd.loadgen.invariants import Check
from ledgerd.loadgen.pgbench import PgbenchResult
from ledgerd.loadgen.provision import Provisioned
from ledgerd.loadgen.stats import RunStats

SCHEMA = "ledgerd-bench/1"


def machine_info() -> dict[str, Any]:
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not every platform knows these names
        memory = None
    return {
        "cpu_count": os.cpu_count(),
        "memory_bytes": memory,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_average": _load_average(),
    }


def _load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class BenchReport:
    config: BenchConfig
    run_id: str
    started_at: datetime
    machine: dict[str, Any]
    provisioned: Provisioned | None
    stats: RunStats
    checks: Sequence[Check]
    pgbench: PgbenchResult | None

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def rate(self) -> float:
        """Transfers (trivial: calls) answered successfully per second of the run."""
        elapsed = self.stats.elapsed_s
        return self.stats.transfers_ok / elapsed if elapsed > 0 else 0.0

    @property
    def ratio(self) -> float | None:
        """The run's rate over pgbench's naive-ledger rate on the same database server."""
        if self.pgbench is None or self.pgbench.transfers_per_s <= 0:
            return None
        return self.rate / self.pgbench.transfers_per_s

    def document(self) -> dict[str, Any]:
        stats = self.stats
        elapsed = stats.elapsed_s
        return {
            "schema": SCHEMA,
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "config": self.config.describe(),
            "machine": {**self.machine, "load_average_after": _load_average()},
            "setup": None if self.provisioned is None else asdict(self.provisioned),
            "result": {
                "unit": "calls" if self.config.trivial else "transfers",
                "elapsed_s": round(elapsed, 3),
                "requests": stats.requests,
                "failed_requests": stats.failed_requests,
                "transfers_ok": stats.transfers_ok,
                "transfers_failed": stats.transfers_failed,
                "replayed": stats.replayed,
                "transfers_per_s": round(self.rate, 1),
                "requests_per_s": round(stats.requests / elapsed, 1) if elapsed > 0 else 0.0,
                "latency_ms": stats.latency.summary_ms(),
                "errors": dict(stats.errors.most_common()),
            },
            "pgbench": None if self.pgbench is None else self.pgbench.describe(),
            "ratio_to_pgbench": None if self.ratio is None else round(self.ratio, 3),
            "invariants": {
                "ok": self.ok,
                "checks": [asdict(check) for check in self.checks],
            },
        }


def summary_table(report: BenchReport) -> Table:
    config, stats = report.config, report.stats
    unit = "calls" if config.trivial else "transfers"
    latency = stats.latency.summary_ms()
    table = Table(title=f"ledgerd bench {report.run_id}", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    what = (
        "trivial (health check)" if config.trivial else f"{config.workload}, batch {config.batch}"
    )
    table.add_row("target", f"{config.target}  {what}")
    table.add_row(
        "load",
        f"{config.clients} clients in {config.processes} process(es), "
        f"{stats.elapsed_s:.1f} s, {os.cpu_count()} CPUs",
    )
    table.add_row(f"{unit}/s", f"{report.rate:,.0f}  ({stats.transfers_ok:,} ok)")
    if config.batch > 1:
        table.add_row("requests/s", f"{stats.requests / max(stats.elapsed_s, 1e-9):,.0f}")
    table.add_row(
        "latency ms",
        f"p50 {latency['p50']:.2f}  p95 {latency['p95']:.2f}  "
        f"p99 {latency['p99']:.2f}  max {latency['max']:.2f}",
    )
    errors = ", ".join(f"{code} {count:,}" for code, count in stats.errors.most_common())
    table.add_row("errors", errors or "none")
    if report.pgbench is not None:
        pg = report.pgbench
        table.add_row(
            "pgbench",
            f"{pg.transfers_per_s:,.0f} transfers/s (naive, {pg.per_transaction} per "
            f"transaction, {pg.clients} clients, {pg.workload})",
        )
        table.add_row("ratio", f"{report.ratio:.2f}x pgbench" if report.ratio is not None else "-")
    for check in report.checks:
        verdict = "skipped" if check.skipped else ("OK" if check.ok else "FAILED")
        style = "green" if check.ok else "bold red"
        # Text, not markup: a detail may hold brackets that markup would try to interpret.
        table.add_row(check.name, Text.assemble((verdict, style), "  ", check.detail))
    return table


def print_summary(report: BenchReport, console: Console | None = None) -> None:
    (console or Console(file=sys.stdout)).print(summary_table(report))
