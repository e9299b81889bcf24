"""Re-check a ledger from its records: the hash chain, the journal and the global invariant.

The checkers are fed records one at a time so a ledger of any size verifies in bounded memory
(apart from one small running total per account and asset).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from ledgerd.ledger.domain.chain import chained_hash
from ledgerd.ledger.domain.model import (
    Account,
    Balances,
    Entry,
    Layer,
    LedgerHead,
    Leg,
    Side,
    Transfer,
    TransferKind,
    TransferStatus,
)
from ledgerd.ledger.domain.movements import transfer_movements

# The status a settled transfer must show, by the kind of record that settled it.
_SETTLED_STATUS = {
    TransferKind.CAPTURE: TransferStatus.CAPTURED,
    TransferKind.VOID: TransferStatus.VOIDED,
    TransferKind.EXPIRY: TransferStatus.EXPIRED,
    TransferKind.REVERSAL: TransferStatus.REVERSED,
}
# What each kind of record may settle, and which kinds may be settled by it.
_SETTLES = {
    TransferKind.CAPTURE: frozenset({TransferKind.PENDING}),
    TransferKind.VOID: frozenset({TransferKind.PENDING}),
    TransferKind.EXPIRY: frozenset({TransferKind.PENDING}),
    TransferKind.REVERSAL: frozenset(
        {TransferKind.POSTING, TransferKind.CAPTURE, TransferKind.REVERSAL}
    ),
}


def _initial_status(kind: TransferKind) -> TransferStatus:
    return TransferStatus.PENDING if kind is TransferKind.PENDING else TransferStatus.POSTED


_MAX_PROBLEMS = 100
# Position of each balance in Balances' field order.
_BALANCE_INDEX = {
    (Layer.POSTED, Side.DEBIT): 0,
    (Layer.POSTED, Side.CREDIT): 1,
    (Layer.PENDING, Side.DEBIT): 2,
    (Layer.PENDING, Side.CREDIT): 3,
}


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
    """Feed transfers in sequence order, then ``finish`` with the stored head.

    Besides the hashes it replays every transfer's movements, so the balances the chain
    implies can be held against the journal and the stored accounts.
    """

    def __init__(self, report: VerificationReport) -> None:
        self._report = report
        self._previous = LedgerHead(report.ledger_id)
        self._kinds: dict[str, TransferKind] = {}
        self._statuses: dict[str, TransferStatus] = {}
        self._settled_by: dict[str, TransferKind] = {}
        # Legs of holds, needed to replay the capture that settles them.
        self._held: dict[str, tuple[Leg, ...]] = {}
        self._balances: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])

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
        if previous.created_at is not None and transfer.created_at < previous.created_at:
            report.problem(f"{where}: created before #{previous.sequence}, out of chain order")
        self._previous = LedgerHead(
            report.ledger_id, transfer.sequence, transfer.hash, transfer.created_at
        )
        self._kinds[transfer.id] = transfer.kind
        self._statuses[transfer.id] = transfer.status
        if transfer.kind is TransferKind.PENDING:
            self._held[transfer.id] = transfer.legs
        self._check_target(transfer, where)
        held = self._held.get(transfer.target_id or "", ())
        for move in transfer_movements(transfer, held):
            index = _BALANCE_INDEX[move.layer, move.side]
            self._balances[move.account_id][index] += move.amount

    def _check_target(self, transfer: Transfer, where: str) -> None:
        settles = _SETTLES.get(transfer.kind)
        if settles is None:
            if transfer.target_id is not None:
                self._report.problem(f"{where}: a {transfer.kind} transfer cannot settle another")
            return
        target = transfer.target_id
        if target is None or self._kinds.get(target) not in settles:
            self._report.problem(f"{where}: a {transfer.kind} must settle an earlier transfer")
            return
        if target in self._settled_by:
            self._report.problem(f"{where}: settles {target}, already settled")
        self._settled_by[target] = transfer.kind

    def expected_balances(self) -> dict[str, Balances]:
        """The balances every account should have, replayed from the chain alone."""
        return {account: Balances(*values) for account, values in self._balances.items()}

    def finish(self, head: LedgerHead) -> None:
        report = self._report
        if (head.sequence, head.hash) != (self._previous.sequence, self._previous.hash):
            report.problem(
                f"ledger head #{head.sequence} does not match the last transfer "
                f"#{self._previous.sequence}: records were added or removed"
            )
        for transfer_id, status in self._statuses.items():
            settled_by = self._settled_by.get(transfer_id)
            expected = (
                _initial_status(self._kinds[transfer_id])
                if settled_by is None
                else _SETTLED_STATUS[settled_by]
            )
            if status is not expected:
                cause = "nothing settled it" if settled_by is None else f"a {settled_by} settled it"
                report.problem(f"transfer {transfer_id} is {status}, but {cause}")


class JournalVerifier:
    """Feed entries grouped by account in account-sequence order, then each stored account."""

    def __init__(self, report: VerificationReport, expected: Mapping[str, Balances]) -> None:
        self._report = report
        self._expected = expected
        self._running: dict[str, Balances] = {}
        self._counts: defaultdict[str, int] = defaultdict(int)
        self._checked: set[str] = set()

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
        self._checked.add(account.id)
        running = self._running.get(account.id, Balances())
        if running != account.balances:
            report.problem(f"account {account.id}: stored balances differ from its entries")
        if self._expected.get(account.id, Balances()) != account.balances:
            report.problem(f"account {account.id}: stored balances differ from the hash chain")
        if self._counts[account.id] != account.entry_count:
            report.problem(f"account {account.id}: entry count differs from its entries")
        totals = report.totals.setdefault(str(account.asset), AssetTotals())
        totals.posted_debits += account.balances.posted_debits
        totals.posted_credits += account.balances.posted_credits
        totals.pending_debits += account.balances.pending_debits
        totals.pending_credits += account.balances.pending_credits

    def finish(self) -> None:
        for account_id in sorted(set(self._expected) - self._checked):
            self._report.problem(f"account {account_id}: moved by the chain but not stored")
        for asset, totals in sorted(self._report.totals.items()):
            if not totals.balanced:
                self._report.problem(f"{asset}: total debits differ from total credits")
