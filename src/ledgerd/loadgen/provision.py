"""Set-up before a run: the ledger and its accounts, created over the API, idempotently.

The accounts carry no balance flags, so no transfer can fail for want of funds and every
failure a run reports is the server's. Opening an account again with the same attributes is a
no-op by the API's contract, but the accounts already there are listed first and skipped, so
re-running against a prepared ledger costs a few list pages instead of 10,000 calls.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from ledgerd.loadgen.transport import ApiError, Transport
from ledgerd.loadgen.workload import account_id

# Concurrent CreateAccount calls: enough to hide the round trips, few enough to leave the
# server's connection pool some room.
CREATE_CONCURRENCY = 32
MAX_PAGES = 100_000  # a listing that never ends is a broken server, not a big ledger


@dataclass(frozen=True, slots=True)
class Provisioned:
    accounts_existing: int
    accounts_created: int
    seconds: float


async def existing_account_ids(admin: Transport, ledger: str) -> set[str]:
    found: set[str] = set()
    token = ""
    for _ in range(MAX_PAGES):
        page = await admin.list_accounts(ledger, token)
        found.update(account.id for account in page.items)
        token = page.next_token
        if not token:
            return found
    raise ApiError("ENDLESS_LISTING", "ListAccounts kept returning pages")


async def provision(admin: Transport, ledger: str, accounts: int, asset: str) -> Provisioned:
    began = time.perf_counter()
    await admin.create_ledger(ledger)
    wanted = [account_id(index) for index in range(accounts)]
    existing = await existing_account_ids(admin, ledger)
    missing = [account for account in wanted if account not in existing]
    queue = iter(missing)

    async def creator() -> None:
        for account in queue:  # a shared iterator: each account is taken by one creator
            await admin.create_account(ledger, account, asset)

    await asyncio.gather(*(creator() for _ in range(min(CREATE_CONCURRENCY, len(missing)))))
    return Provisioned(
        accounts_existing=accounts - len(missing),
        accounts_created=len(missing),
        seconds=time.perf_counter() - began,
    )
