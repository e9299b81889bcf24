"""100,000 concurrent PostTransfers callers in one process, against the batcher.

Every caller is its own asyncio task posting one transfer through the real batcher and the
real posting handler on a real database; all are started before the first one finishes, so
the queue really holds them all at once. Reports the time until every caller has its answer,
the batches that carried them, and memory per in-flight caller (peak RSS growth divided by
the callers), beside the same workload posted by one caller in batches of 1,000 (the floor:
no per-caller cost at all). Then checks the ledger with the verification use case.

    python bench/scale.py [--callers 100000] [--database-url URL] [--output FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.kernel.money import Asset
from ledgerd.kernel.result import Ok
from ledgerd.ledger.application.create_ledger import CreateLedger, CreateLedgerHandler
from ledgerd.ledger.application.open_account import OpenAccount, OpenAccountHandler
from ledgerd.ledger.application.post_transfers import (
    PostTransfers,
    PostTransfersHandler,
    TransferPoster,
)
from ledgerd.ledger.application.verify_ledger import VerifyLedger, VerifyLedgerHandler
from ledgerd.ledger.domain.model import AccountFlags
from ledgerd.ledger.domain.requests import LegRequest, TransferRequest
from ledgerd.main.container import build_container
from ledgerd.main.migrations import MIGRATIONS
from ledgerd.main.settings import Settings

ACCOUNTS = 100
USD = Asset("USD", 2)


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _request(ledger: str, key: str, n: int) -> PostTransfers:
    leg = LegRequest("bank", f"a{n % ACCOUNTS}", 1)
    return PostTransfers(ledger, [TransferRequest(idempotency_key=key, legs=(leg,))])


async def _prepare(container: Any, ledger: str) -> None:  # noqa: ANN401 - dishka's container
    await (await container.get(CreateLedgerHandler))(CreateLedger(ledger_id=ledger, name=ledger))
    open_account = await container.get(OpenAccountHandler)
    for account in ["bank", *(f"a{n}" for n in range(ACCOUNTS))]:
        await open_account(
            OpenAccount(
                ledger_id=ledger, account_id=account, asset=USD, flags=AccountFlags(), metadata={}
            )
        )


async def run(callers: int, database_url: str) -> dict[str, Any]:
    settings = Settings(database_url=database_url, batch_queue_capacity=callers + 1)
    container = build_container(settings)
    try:
        await MIGRATIONS.upgrade(await container.get(AsyncEngine))
        stamp = time.strftime("%H%M%S")
        await _prepare(container, f"scale-{stamp}")
        await _prepare(container, f"floor-{stamp}")

        # The floor: one caller, batches of 1,000 straight into the handler.
        handler = await container.get(PostTransfersHandler)
        started = time.perf_counter()
        for first in range(0, callers, 1_000):
            requests = [
                _request(f"floor-{stamp}", f"f{n}", n).requests[0]
                for n in range(first, min(callers, first + 1_000))
            ]
            await handler(PostTransfers(f"floor-{stamp}", requests))
        floor_s = time.perf_counter() - started

        poster = await container.get(TransferPoster)
        rss_before = _peak_rss_bytes()
        started = time.perf_counter()
        tasks = [
            asyncio.create_task(poster(_request(f"scale-{stamp}", f"s{n}", n)))
            for n in range(callers)
        ]
        outcomes = await asyncio.gather(*tasks)
        elapsed_s = time.perf_counter() - started
        rss_growth = _peak_rss_bytes() - rss_before
        posted = sum(isinstance(outcome[0], Ok) for outcome in outcomes)

        verify = await container.get(VerifyLedgerHandler)
        report = await verify(VerifyLedger(f"scale-{stamp}"))
        return {
            "callers": callers,
            "database": settings.database_url.split("://")[0],
            "posted": posted,
            "seconds": round(elapsed_s, 2),
            "transfers_per_s": round(callers / elapsed_s),
            "memory_per_caller_bytes": round(rss_growth / callers),
            "floor_seconds_one_caller_batches_of_1000": round(floor_s, 2),
            "floor_transfers_per_s": round(callers / floor_s),
            "verified": report.ok,
        }
    finally:
        await container.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=100_000)
    parser.add_argument("--database-url", default="sqlite+aiosqlite:///bench/results/scale.db")
    parser.add_argument("--output", type=Path, default=Path("bench/results/scale.json"))
    args = parser.parse_args()
    result = asyncio.run(run(args.callers, args.database_url))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = result["verified"] and result["posted"] == args.callers
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
