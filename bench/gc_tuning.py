"""Garbage-collector settings before/after: the same load on ``ledgerd serve`` under each.

Creates a fresh PostgreSQL database, then for each variant (rounds interleaved, so drift
over the run touches every variant alike) starts ``ledgerd serve`` with that variant's
``LEDGERD_GC_FREEZE`` / ``LEDGERD_GC_GEN0_THRESHOLD``, runs ``ledgerd bench`` (gRPC, hot,
single transfers, 64 clients), stops the server and reads the collector's pauses from the
record ``serve`` logs at DEBUG when it stops. Writes bench/results/gc_tuning.{json,md}.

    python bench/gc_tuning.py [--duration 10s] [--rounds 2] [--server-url URL]

Throughput on this 2-core machine drifts by about 10 % between runs of the same settings, so
the pauses (time in collections, longest pause) are the figures that decide; transfers/s and
p99 are shown beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledgerd.loadgen.pgbench import ServerAddress, drop_database, recreate_database
from ledgerd.loadgen.served import LEDGERD, ServedLedgerd

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SERVER_URL = os.environ.get(
    "LEDGERD_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
DATABASE = "ledgerd_gc_bench"
LEDGER = "gc"
# The record `serve` logs at DEBUG when it stops.
_PAUSES = re.compile(
    r" DEBUG [\w.]+: gc: (?P<total>[\d.]+) ms in (?P<count>\d+) collections, "
    r"longest (?P<longest>[\d.]+) ms"
)


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    freeze: bool
    gen0_threshold: int  # 0: Python's own (700)


VARIANTS = (
    Variant("Python's defaults", freeze=False, gen0_threshold=0),
    Variant("gc.freeze() after start-up", freeze=True, gen0_threshold=0),
    Variant("gen0 threshold 10,000", freeze=False, gen0_threshold=10_000),
    Variant("both (ledgerd's default)", freeze=True, gen0_threshold=10_000),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--duration", default="10s", help="each load run's duration")
    parser.add_argument("--rounds", type=int, default=2, help="runs per variant, interleaved")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL, help="a PostgreSQL server")
    arguments = parser.parse_args()

    server = ServerAddress.from_url(arguments.server_url)
    database_url = arguments.server_url.rsplit("/", 1)[0] + f"/{DATABASE}"
    RESULTS.mkdir(exist_ok=True)
    asyncio.run(recreate_database(server, DATABASE))
    environment = {
        **os.environ,
        "LEDGERD_DATABASE_URL": database_url,
        "LEDGERD_LOG_LEVEL": "DEBUG",  # the pauses are a debug record
        # Off: it compares collector settings on the posting path, not authentication.
        "LEDGERD_AUTH": "off",
        "PYTHONUNBUFFERED": "1",
    }
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    runs: dict[str, list[dict[str, float]]] = {variant.name: [] for variant in VARIANTS}
    try:
        subprocess.run([LEDGERD, "migrate"], env=environment, check=True)  # noqa: S603 - ours
        for round_number in range(1, arguments.rounds + 1):
            for variant in VARIANTS:
                print(f"\n== round {round_number}: {variant.name}", flush=True)
                runs[variant.name].append(_measure(variant, environment, arguments))
    finally:
        asyncio.run(drop_database(server, DATABASE))
    table = _table(runs)
    (RESULTS / "gc_tuning.json").write_text(json.dumps(runs, indent=2) + "\n")
    (RESULTS / "gc_tuning.md").write_text(table)
    print(f"\n{table}")
    return 0


def _measure(
    variant: Variant, environment: dict[str, str], arguments: argparse.Namespace
) -> dict[str, float]:
    variant_environment = {
        **environment,
        "LEDGERD_GC_FREEZE": str(variant.freeze).lower(),
        "LEDGERD_GC_GEN0_THRESHOLD": str(variant.gen0_threshold),
    }
    log = RESULTS / "gc_tuning_server.log"
    output = RESULTS / "gc_tuning_run.json"
    with ServedLedgerd(variant_environment, log) as served:
        subprocess.run(  # noqa: S603 - our own console script
            [
                str(LEDGERD),
                "bench",
                f"--target={served.grpc}",
                "--workload=hot",
                "--clients=64",
                f"--duration={arguments.duration}",
                f"--accounts={arguments.accounts}",
                f"--ledger={LEDGER}",
                f"--output={output}",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    # The server has stopped (Server.__exit__ waits): its last lines hold the pauses.
    pauses = _PAUSES.search(log.read_text(errors="replace"))
    if pauses is None:
        msg = f"no 'gc:' line in {log}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(output.read_text())["result"]
    measured = {
        "transfers_per_s": float(result["transfers_per_s"]),
        "p99_ms": float(result["latency_ms"]["p99"]),
        "gc_total_ms": float(pauses["total"]),
        "collections": float(pauses["count"]),
        "longest_pause_ms": float(pauses["longest"]),
    }
    print("   " + ", ".join(f"{key} {value:,.1f}" for key, value in measured.items()), flush=True)
    return measured


def _table(runs: dict[str, list[dict[str, float]]]) -> str:
    lines = [
        "| settings | transfers/s | p99 ms | time in GC, ms | collections | longest pause ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, measured in runs.items():

        def median(key: str, measured: list[dict[str, float]] = measured) -> float:
            return statistics.median(run[key] for run in measured)

        lines.append(
            f"| {name} | {median('transfers_per_s'):,.0f} | {median('p99_ms'):.0f} "
            f"| {median('gc_total_ms'):,.0f} | {median('collections'):,.0f} "
            f"| {median('longest_pause_ms'):.1f} |"
        )
    return "\n".join(lines) + f"\n\nMedians of {len(next(iter(runs.values())))} runs each.\n"


if __name__ == "__main__":
    sys.exit(main())
