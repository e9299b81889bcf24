r"""Run pgbench's naive ledger on its own, or rewrite the scripts in bench/pgbench/.

    python bench/pgbench.py --write-scripts
    python bench/pgbench.py --database-url postgresql://postgres@127.0.0.1:5432/postgres \\
        --workload hot --clients 64 --per-transaction 1 --duration 10s [--output r.json]

``ledgerd bench --compare-pgbench`` runs the same thing right before its own run; the SQL is
``ledgerd.loadgen.pgbench``'s, and the files in bench/pgbench/ are copies of it kept for
reading and for running pgbench by hand (a test keeps them identical).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from ledgerd.loadgen.config import Workload, parse_duration
from ledgerd.loadgen.pgbench import PgbenchError, run_pgbench, write_scripts

SCRIPTS = Path(__file__).resolve().parent / "pgbench"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--write-scripts", action="store_true", help=f"rewrite {SCRIPTS}/*.sql")
    parser.add_argument("--database-url", default=DEFAULT_URL, help="the PostgreSQL server")
    parser.add_argument("--workload", choices=[str(w) for w in Workload], default="uniform")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--per-transaction", type=int, default=1)
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--output", type=Path, help="write the result as JSON here")
    arguments = parser.parse_args()
    if arguments.write_scripts:
        for path in write_scripts(SCRIPTS):
            print(f"wrote {path}")
        return 0
    try:
        result = asyncio.run(
            run_pgbench(
                arguments.database_url,
                workload=Workload(arguments.workload),
                accounts=arguments.accounts,
                clients=arguments.clients,
                per_transaction=arguments.per_transaction,
                duration_s=parse_duration(arguments.duration),
            )
        )
    except PgbenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"{result.transfers_per_s:,.0f} transfers/s ({result.tps:,.1f} tps x "
        f"{result.per_transaction}), {result.failed_transactions} failed, debits = credits: "
        f"{result.balanced}\n  {result.command}"
    )
    if arguments.output is not None:
        arguments.output.write_text(json.dumps(result.describe(), indent=2) + "\n")
    return 0 if result.balanced else 1


if __name__ == "__main__":
    sys.exit(main())
