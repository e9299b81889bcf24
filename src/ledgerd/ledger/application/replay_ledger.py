"""Rebuild every balance from the event stream and compare (``ledgerd replay LEDGER``).

Event sourcing's promise, checked: a read model that knows nothing but the ledger's events
(its accounts from their creation events, its balances from the entries each transfer event
carries) must end exactly where the ledger's stored balances are, and the stored balances
must be what the journal adds up to (``verify``, which also re-checks the hash chain). Any
difference is listed in the report.

What the stream itself must be: gap-free from 1, each event decodable, the transfers in
chain order with no transfer missing, every entry's ``balances_after`` equal to the running
balance the read model has at that point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledgerd.ledger.application.ledger_events import (
    AccountChanged,
    AccountOpened,
    LedgerEvents,
    LedgerOpened,
    RecordedEntry,
    StreamedEvent,
    TransferRecorded,
    UnreadableEvent,
)
from ledgerd.ledger.application.queries import ListAccountsQuery
from ledgerd.ledger.application.verify_ledger import VerifyLedger, VerifyLedgerHandler
from ledgerd.ledger.domain.model import Balances, Layer, Side

_PAGE = 1000


@dataclass(frozen=True, slots=True)
class ReplayLedger:
    ledger_id: str


@dataclass
class ReplayReport:
    ledger_id: str
    events: int = 0
    transfers: int = 0
    accounts: int = 0
    journal: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _ReadModel:
    """What a consumer of the events alone knows: accounts and their four balances."""

    # Lists, not Balances: a drifted stream may take a balance where Balances cannot go.
    balances: dict[str, list[int]] = field(default_factory=dict)
    next_transfer: int = 1


class ReplayLedgerHandler:
    def __init__(
        self, events: LedgerEvents, list_accounts: ListAccountsQuery, verify: VerifyLedgerHandler
    ) -> None:
        self._events = events
        self._list_accounts = list_accounts
        self._verify = verify

    async def __call__(self, command: ReplayLedger) -> ReplayReport:
        ledger_id = command.ledger_id
        report = ReplayReport(ledger_id)
        # First: it checks the id and that the ledger exists, so a typo fails before any work.
        verified = await self._verify(VerifyLedger(ledger_id))
        report.journal = "hash chain and balances match the journal" if verified.ok else "FAILED"
        report.problems += [f"journal: {problem}" for problem in verified.problems]

        model = _ReadModel()
        after = 0
        async for event in self._events.stream(ledger_id):
            if event.sequence != after + 1:
                report.problems.append(
                    f"event stream has a gap: sequence {event.sequence} after {after}"
                )
            after = event.sequence
            report.events += 1
            _apply(model, event, report)
        report.accounts = len(model.balances)
        report.transfers = model.next_transfer - 1
        if report.transfers != verified.transfers:
            report.problems.append(
                f"the events carry {report.transfers} transfers, the chain has {verified.transfers}"
            )
        await self._compare_with_stored(ledger_id, model, report)
        return report

    async def _compare_with_stored(
        self, ledger_id: str, model: _ReadModel, report: ReplayReport
    ) -> None:
        stored_ids: set[str] = set()
        cursor: str | None = None
        while True:
            page = await self._list_accounts(ledger_id, cursor=cursor, limit=_PAGE)
            for account in page.items:
                stored_ids.add(account.id)
                rebuilt = model.balances.get(account.id)
                if rebuilt is None:
                    report.problems.append(f"account {account.id} has no AccountCreated event")
                elif rebuilt != _four(account.balances):
                    report.problems.append(
                        f"account {account.id}: stored {_four(account.balances)}, "
                        f"rebuilt from the events {rebuilt}"
                    )
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        for account_id in sorted(model.balances.keys() - stored_ids):
            report.problems.append(f"account {account_id} is in the events but not in the ledger")


def _apply(model: _ReadModel, event: StreamedEvent, report: ReplayReport) -> None:
    match event:
        case UnreadableEvent(sequence=sequence, reason=reason):
            report.problems.append(f"event {sequence}: {reason}")
        case AccountOpened(sequence=sequence, account_id=account_id):
            if account_id in model.balances:
                report.problems.append(f"event {sequence}: account {account_id} created twice")
            model.balances[account_id] = [0, 0, 0, 0]
        # Status and metadata changes move no money: they need only name an account created before.
        case AccountChanged(sequence=sequence, account_id=account_id):
            if account_id not in model.balances:
                report.problems.append(f"event {sequence}: account {account_id} never created")
        case TransferRecorded():
            if event.chain_position != model.next_transfer:
                report.problems.append(
                    f"event {event.sequence}: transfer {event.transfer_id} is chain position "
                    f"{event.chain_position}, expected {model.next_transfer}"
                )
            model.next_transfer = event.chain_position + 1
            for entry in event.entries:
                _apply_entry(model, event.sequence, entry, report)
        case LedgerOpened():
            pass  # the ledger's creation: no account, no money


# Where each entry lands among the four balances, in the order _four lists them.
_SLOT = {
    (Layer.POSTED, Side.DEBIT): 0,
    (Layer.POSTED, Side.CREDIT): 1,
    (Layer.PENDING, Side.DEBIT): 2,
    (Layer.PENDING, Side.CREDIT): 3,
}


def _apply_entry(
    model: _ReadModel, sequence: int, entry: RecordedEntry, report: ReplayReport
) -> None:
    balance = model.balances.get(entry.account_id)
    if balance is None:
        report.problems.append(f"event {sequence}: entry for unknown account {entry.account_id}")
        balance = model.balances.setdefault(entry.account_id, [0, 0, 0, 0])
    balance[_SLOT[entry.layer, entry.side]] += entry.amount
    carried = _four(entry.balances_after)
    if balance != carried:
        report.problems.append(
            f"event {sequence}: {entry.account_id} is {balance} by the events so far, "
            f"but the entry says {carried}"
        )


def _four(balances: Balances) -> list[int]:
    return [
        balances.posted_debits,
        balances.posted_credits,
        balances.pending_debits,
        balances.pending_credits,
    ]
