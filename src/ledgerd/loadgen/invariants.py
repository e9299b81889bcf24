"""The invariants a run must leave intact, checked after it through the API and the verifier.

- per asset, the accounts' posted debits equal their posted credits (and pending likewise);
- every transfer the server acknowledged is in the ledger (a full listing of the transfers
  created since the run began, compared as sets with the acknowledged ids);
- every account's balances equal the sum of its entries: over the API for a sample of
  accounts, and for all of them by ``ledgerd verify`` (which also re-checks the hash chain)
  when the database URL is known, run as a separate process like an operator would.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ledgerd.loadgen.transport import AccountView, ApiError, Transport

MAX_PAGES = 100_000
SAMPLE_ACCOUNTS = 8
# Sampled accounts with more entries than this are left to `ledgerd verify` (the hot account).
SAMPLE_MAX_ENTRIES = 20_000
VERIFY_TIMEOUT_S = 900.0
_SHOWN = 5  # how many offending ids a failed check names

DEBITS_EQUAL_CREDITS = "debits = credits per asset"
ACKNOWLEDGED_PRESENT = "acknowledged transfers present"
SAMPLED_BALANCES = "balances = entries (sample)"
LEDGERD_VERIFY = "ledgerd verify"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    skipped: bool = False


async def all_accounts(admin: Transport, ledger: str) -> list[AccountView]:
    accounts: list[AccountView] = []
    token = ""
    for _ in range(MAX_PAGES):
        page = await admin.list_accounts(ledger, token)
        accounts.extend(page.items)
        token = page.next_token
        if not token:
            return accounts
    raise ApiError("ENDLESS_LISTING", "ListAccounts kept returning pages")


def debits_equal_credits(accounts: Sequence[AccountView]) -> Check:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for account in accounts:
        total = totals[account.asset]
        total[0] += account.posted_debits
        total[1] += account.posted_credits
        total[2] += account.pending_debits
        total[3] += account.pending_credits
    balanced = all(t[0] == t[1] and t[2] == t[3] for t in totals.values())
    parts = [
        f"{asset}: posted {t[0]} {'=' if t[0] == t[1] else '!='} {t[1]}, "
        f"pending {t[2]} {'=' if t[2] == t[3] else '!='} {t[3]}"
        for asset, t in sorted(totals.items())
    ]
    detail = f"{len(accounts)} accounts; " + ("; ".join(parts) or "no assets")
    return Check(DEBITS_EQUAL_CREDITS, balanced, detail)


async def acknowledged_present(
    admin: Transport, ledger: str, acknowledged: Iterable[str], since: datetime
) -> Check:
    acked = set(acknowledged)
    listed = await _transfer_ids(admin, ledger, since)
    missing = acked - listed
    detail = f"{len(acked)} acknowledged, {len(listed)} listed since the run began"
    if missing:
        # The time filter reads the server's clock against this machine's: before calling
        # anything missing, look through the whole ledger.
        listed = await _transfer_ids(admin, ledger, None)
        missing = acked - listed
        detail = f"{len(acked)} acknowledged, {len(listed)} in the whole ledger"
    if missing:
        shown = ", ".join(sorted(missing)[:_SHOWN])
        detail += f"; {len(missing)} MISSING, e.g. {shown}"
    return Check(ACKNOWLEDGED_PRESENT, not missing, detail)


async def _transfer_ids(admin: Transport, ledger: str, since: datetime | None) -> set[str]:
    listed: set[str] = set()
    token = ""
    for _ in range(MAX_PAGES):
        page = await admin.list_transfer_ids(ledger, token, since)
        listed.update(page.items)
        token = page.next_token
        if not token:
            return listed
    raise ApiError("ENDLESS_LISTING", "ListTransfers kept returning pages")


async def sampled_balances_match_entries(
    admin: Transport, ledger: str, accounts: Sequence[AccountView], rng: random.Random
) -> Check:
    name = SAMPLED_BALANCES
    # Accounts the run moved money through, if any: an untouched account proves little.
    moved = [a for a in accounts if a.posted_debits or a.posted_credits] or list(accounts)
    sample = rng.sample(moved, min(SAMPLE_ACCOUNTS, len(moved)))
    wrong: list[str] = []
    skipped: list[str] = []
    for account in sample:
        sums = await _entry_sums(admin, ledger, account.id)
        if sums is None:
            skipped.append(account.id)
            continue
        stored = (
            account.posted_debits,
            account.posted_credits,
            account.pending_debits,
            account.pending_credits,
        )
        if sums != stored:
            wrong.append(f"{account.id} stores {stored}, entries sum to {sums}")
    checked = len(sample) - len(skipped)
    detail = f"{checked} accounts checked over the API"
    if skipped:
        detail += f" ({len(skipped)} with over {SAMPLE_MAX_ENTRIES} entries left to verify)"
    if wrong:
        detail += "; MISMATCH: " + "; ".join(wrong[:_SHOWN])
    return Check(name, not wrong, detail)


async def _entry_sums(
    admin: Transport, ledger: str, account: str
) -> tuple[int, int, int, int] | None:
    sums = {"POSTED": [0, 0], "PENDING": [0, 0]}
    seen = 0
    token = ""
    for _ in range(MAX_PAGES):
        page = await admin.list_entries(ledger, account, token)
        for entry in page.items:
            sums[entry.layer][entry.side == "CREDIT"] += entry.amount
        seen += len(page.items)
        token = page.next_token
        if not token:
            break
        if seen > SAMPLE_MAX_ENTRIES:
            return None
    return (sums["POSTED"][0], sums["POSTED"][1], sums["PENDING"][0], sums["PENDING"][1])


def ledgerd_command() -> list[str]:
    """The ``ledgerd`` beside this interpreter (same install), else the one on PATH."""
    beside = Path(sys.executable).parent / "ledgerd"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("ledgerd")
    if found is None:
        msg = "no ledgerd executable beside this Python or on PATH"
        raise FileNotFoundError(msg)
    return [found]


async def ledgerd_verify(ledger: str, database_url: str | None, *, verify: bool = True) -> Check:
    name = LEDGERD_VERIFY
    if not verify:
        return Check(name, ok=True, detail="not run: --no-verify", skipped=True)
    if database_url is None:
        return Check(name, ok=True, detail="not run: no --database-url", skipped=True)
    environment = {**os.environ, "LEDGERD_DATABASE_URL": database_url}
    process = await asyncio.create_subprocess_exec(
        *ledgerd_command(),
        "verify",
        ledger,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), VERIFY_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        return Check(name, ok=False, detail=f"did not finish in {VERIFY_TIMEOUT_S:.0f} s")
    lines = output.decode(errors="replace").strip().splitlines()
    detail = " | ".join(line.strip() for line in lines[-4:]) or "(no output)"
    return Check(name, process.returncode == 0, f"exit {process.returncode}: {detail}")


async def check_invariants(  # noqa: PLR0913 - what each check needs, passed once
    admin: Transport,
    ledger: str,
    acknowledged: Iterable[str],
    since: datetime,
    *,
    database_url: str | None,
    verify: bool = True,
    rng: random.Random,
) -> list[Check]:
    accounts = await all_accounts(admin, ledger)
    return [
        debits_equal_credits(accounts),
        await acknowledged_present(admin, ledger, acknowledged, since),
        await sampled_balances_match_entries(admin, ledger, accounts, rng),
        await ledgerd_verify(ledger, database_url, verify=verify),
    ]
