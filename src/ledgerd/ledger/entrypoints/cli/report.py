"""Plain-text rendering of ledger results for the command line."""

from __future__ import annotations

from collections.abc import Sequence

from ledgerd.ledger.application.queries.balances import AccountBalance
from ledgerd.ledger.application.replay_ledger import ReplayReport
from ledgerd.ledger.domain.verification import VerificationReport


def balance_table(balances: Sequence[AccountBalance]) -> str:
    """Balances as decimal amounts in the account's asset, one account per line."""
    header = ("account", "asset", "posted dr", "posted cr", "pending dr", "pending cr", "available")
    rows = [header]
    for item in balances:
        asset, b = item.account.asset, item.balances
        rows.append(
            (
                item.account.id
                + ("" if item.account.status == "open" else f" ({item.account.status})"),
                str(asset),
                asset.format(b.posted_debits),
                asset.format(b.posted_credits),
                asset.format(b.pending_debits),
                asset.format(b.pending_credits),
                asset.format(item.available),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(width) if column < 2 else cell.rjust(width)  # noqa: PLR2004 - two text columns
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return "\n".join(lines)


def verification_summary(report: VerificationReport) -> str:
    lines = [
        (
            f"ledger {report.ledger_id}: {report.transfers} transfers, "
            f"{report.entries} entries, {report.accounts} accounts"
        )
    ]
    for asset, totals in sorted(report.totals.items()):
        lines.append(
            f"  {asset}: posted debits {totals.posted_debits} = credits {totals.posted_credits}; "
            f"pending debits {totals.pending_debits} = credits {totals.pending_credits}"
            if totals.balanced
            else f"  {asset}: UNBALANCED {totals}"
        )
    if report.ok:
        lines.append("  hash chain intact, balances match the journal, debits = credits: OK")
    else:
        lines.extend(f"  PROBLEM: {problem}" for problem in report.problems)
    return "\n".join(lines)


def replay_summary(report: ReplayReport) -> str:
    head = (
        f"ledger {report.ledger_id}: {report.events} events, {report.transfers} transfers, "
        f"{report.accounts} accounts rebuilt from the event stream"
    )
    lines = [head, f"  journal: {report.journal}"]
    if report.ok:
        lines.append("  balances from the events = stored balances = the journal: OK")
    else:
        lines.extend(f"  PROBLEM: {problem}" for problem in report.problems)
    return "\n".join(lines)
