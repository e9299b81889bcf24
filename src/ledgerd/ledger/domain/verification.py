"""Re-check a ledger from its records: the hash chain, the journal and the global invariant.

The checkers are fed records one at a time so a ledger of any size verifies in bounded memory
(apart from one small running total per account and asset).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ledgerd.ledger.domain.chain import chained_hash
from ledgerd.ledger.domain.model import (
    GENESIS_HASH,
    Account,
    Balances,
    Entry,
    LedgerHead,
    Transfer,
    TransferKind,
    TransferStatus,
)

# The status a settled transfer must show, by the kind of record that settled it.
_SETTLED_STATUS = {
    TransferKind.CAPTURE: TransferStatus.CAPTURED,
    TransferKind.VOID: TransferStatus.VOIDED,
    TransferKind.EXPIRY: TransferStatus.EXPIRED,
    TransferKind.REVERSAL: TransferStatus.REVERSED,
}
_MAX_PROBLEMS = 100


@dataclass
class AssetTotals:
    posted_debits: int = 0
    posted_credits: int = 0
    pending_debits: int = 0
    pending_credits: int = 0

    @property
    def balanced(self) -> bool:
        return (
            self.posted_debits == self.posted_credits
            and self.pending_debits == self.pending_credits
        )


@dataclass
class VerificationReport:
    ledger_id: str
    transfers: int = 0
    entries: int = 0
    accounts: int = 0
    totals: dict[str, AssetTotals] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(text)


class ChainVerifier:
    """Feed transfers in sequence order, then ``finish`` with the stored head."""

    def __init__(self, report: VerificationReport) -> None:
        self._report = report
        self._previous = LedgerHead(report.ledger_id)
        self._statuses: dict[str, TransferStatus] = {}
        self._settled_by: dict[str, TransferKind] = {}

    def feed(self, transfer: Transfer) -> None:
        report, previous = self._report, self._previous
        report.transfers += 1
        where = f"transfer #{transfer.sequence} ({transfer.id})"
        if transfer.sequence != previous.sequence + 1:
            report.problem(f"{where}: sequence follows #{previous.sequence}, a gap or a repeat")
        if transfer.prev_hash != previous.hash:
            report.problem(f"{where}: prev_hash does not match the previous transfer's hash")
        if chained_hash(transfer, transfer.prev_hash) != transfer.hash:
            report.problem(f"{where}: hash does not match its content (altered record)")
        self._previous = LedgerHead(report.ledger_id, transfer.sequence, transfer.hash)
        self._statuses[transfer.id] = transfer.status
        if transfer.target_id is not None:
            if transfer.target_id in self._settled_by:
                report.problem(f"{where}: settles {transfer.target_id}, already settled")
            self._settled_by[transfer.target_id] = transfer.kind

    def finish(self, head: LedgerHead) -> None:
        report = self._report
        if (head.sequence, head.hash) != (self._previous.sequence, self._previous.hash):
            report.problem(
                f"ledger head #{head.sequence} does not match the last transfer "
                f"#{self._previous.sequence}: records were added or removed"
            )
        for target_id, kind in self._settled_by.items():
            expected = _SETTLED_STATUS[kind]
            actual = self._statuses.get(target_id)
            if actual is not expected:
                report.problem(f"transfer {target_id} is {actual} but a {kind} settled it")
        for transfer_id, status in self._statuses.items():
            settles = status in _SETTLED_STATUS.values()
            if settles and transfer_id not in self._settled_by:
                report.problem(f"transfer {transfer_id} is {status} but nothing settled it")


class JournalVerifier:
    """Feed entries grouped by account in account-sequence order, then each stored account."""

    def __init__(self, report: VerificationReport) -> None:
        self._report = report
        self._running: dict[str, Balances] = {}
        self._counts: defaultdict[str, int] = defaultdict(int)

    def feed(self, entry: Entry) -> None:
        report = self._report
        report.entries += 1
        expected_sequence = self._counts[entry.account_id] + 1
        where = f"entry {entry.account_id}#{entry.account_sequence}"
        if entry.account_sequence != expected_sequence:
            report.problem(f"{where}: expected #{expected_sequence}, a gap or a repeat")
        self._counts[entry.account_id] = entry.account_sequence
        before = self._running.get(entry.account_id, Balances())
        field_name = f"{entry.layer.value}_{entry.side.value}s"
        value = getattr(before, field_name) + entry.amount
        running = Balances(
            **{
                name: value if name == field_name else getattr(before, name)
                for name in ("posted_debits", "posted_credits", "pending_debits", "pending_credits")
            }
        )
        if running != entry.balances_after:
            report.problem(f"{where}: running balance does not follow from the entries before it")
        self._running[entry.account_id] = running

    def check_account(self, account: Account) -> None:
        report = self._report
        report.accounts += 1
        running = self._running.get(account.id, Balances())
        if running != account.balances:
            report.problem(f"account {account.id}: stored balances differ from its entries")
        if self._counts[account.id] != account.entry_count:
            report.problem(f"account {account.id}: entry count differs from its entries")
        totals = report.totals.setdefault(str(account.asset), AssetTotals())
        totals.posted_debits += account.balances.posted_debits
        totals.posted_credits += account.balances.posted_credits
        totals.pending_debits += account.balances.pending_debits
        totals.pending_credits += account.balances.pending_credits

    def finish(self) -> None:
        for asset, totals in sorted(self._report.totals.items()):
            if not totals.balanced:
                self._report.problem(f"{asset}: total debits differ from total credits")


__all__ = ["GENESIS_HASH", "ChainVerifier", "JournalVerifier", "VerificationReport"]
