"""What one posting unit of work costs the server, by group size, without any API in front.

One caller posts groups of N single-transfer commands (each its own caller's, as the batcher
groups them) straight into ``PostTransfersHandler.post_group`` on a fresh ledger, and reports
the process's CPU time and the wall time per transfer and per group. The fixed cost of a
group (its round trips) shows in how the per-transfer figure falls as N grows.

    python bench/posting_groups.py [--server-url URL] [--sizes 1,12,100] [--groups 200]

It creates a scratch database on the PostgreSQL server (and drops it at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from ledgerd.kernel.money import Asset
from ledgerd.ledger.application.create_ledger import CreateLedger, CreateLedgerHandler
from ledgerd.ledger.application.open_account import OpenAccount, OpenAccountHandler
from ledgerd.ledger.application.post_transfers import PostTransfers, PostTransfersHandler
from ledgerd.ledger.domain.model import AccountFlags
from ledgerd.ledger.domain.requests import LegRequest, TransferRequest
from ledgerd.loadgen.pgbench import ServerAddress, drop_database, recreate_database
from ledgerd.main.container import build_container
from ledgerd.main.migrations import MIGRATIONS
from ledgerd.main.settings import Settings

DEFAULT_SERVER_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DATABASE = "ledgerd_posting_groups"
ACCOUNTS = 100
WARM_UP_GROUPS = 20


async def measure(database_url: str, sizes: list[int], groups: int) -> None:
    container = build_container(Settings(database_url=database_url))
    try:
        await MIGRATIONS.upgrade(await container.get(AsyncEngine))
        handler = await container.get(PostTransfersHandler)
        for size in sizes:
            ledger = f"groups-{size}-{time.strftime('%H%M%S')}"
            await (await container.get(CreateLedgerHandler))(CreateLedger(ledger, ledger))
            open_account = await container.get(OpenAccountHandler)
            for account in ["bank", *(f"a{n}" for n in range(ACCOUNTS))]:
                await open_account(OpenAccount(ledger, account, Asset("USD", 2), AccountFlags()))
            counter = 0

            async def post_group(size: int = size, ledger: str = ledger) -> None:
                nonlocal counter
                commands = []
                for _ in range(size):
                    leg = LegRequest("bank", f"a{counter % ACCOUNTS}", 1)
                    commands.append(PostTransfers(ledger, [TransferRequest(f"k{counter}", (leg,))]))
                    counter += 1
                await handler.post_group(ledger, commands)

            for _ in range(WARM_UP_GROUPS):
                await post_group()
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(groups):
                await post_group()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            transfers = size * groups
            print(
                f"groups of {size:>4}: CPU {cpu * 1e6 / transfers:7.0f} µs/transfer "
                f"({cpu * 1e3 / groups:6.2f} ms/group), wall {wall * 1e6 / transfers:7.0f} "
                f"µs/transfer",
                flush=True,
            )
    finally:
        await container.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL, help="a PostgreSQL server")
    parser.add_argument("--sizes", default="1,12,100", help="group sizes, comma-separated")
    parser.add_argument("--groups", type=int, default=200, help="groups timed per size")
    arguments = parser.parse_args()
    sizes = [int(size) for size in arguments.sizes.split(",")]
    server = ServerAddress.from_url(arguments.server_url)
    asyncio.run(recreate_database(server, DATABASE))
    try:
        database_url = arguments.server_url.rsplit("/", 1)[0] + f"/{DATABASE}"
        asyncio.run(measure(database_url, sizes, arguments.groups))
    finally:
        asyncio.run(drop_database(server, DATABASE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
