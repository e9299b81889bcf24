"""``ledgerd replay LEDGER``: rebuild every balance from the event stream, compare, fail loudly.

Event sourcing's promise, checked: a read model that knows nothing but the ledger's events
(its accounts from ``AccountCreated``, its balances from the entries each transfer event
carries) must end exactly where the ledger's stored balances are, and the stored balances
must be what the journal adds up to (``verify``, which also re-checks the hash chain). Any
difference is listed; the command exits 1.

What the stream itself must be: gap-free from 1, each event decodable, the transfers in
chain order with no transfer missing, every entry's ``balance_after`` equal to the running
balance the read model has at that point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledgerd.ledger.application.event_log import EventLog
from ledgerd.ledger.application.queries import LedgerQueries
from ledgerd.ledger.application.verify_ledger import VerifyLedger, VerifyLedgerHandler
from ledgerd.ledger.domain.model import Balances
from ledgerd.ledger.published.events import (
    ACCOUNT_MESSAGES,
    TRANSFER_MESSAGES,
    UnknownEventError,
    decode_envelope,
)
from ledgerd.v1 import events_pb2 as events_pb
from ledgerd.v1 import ledger_pb2 as pb

_READ_CHUNK = 1000


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

    def summary(self) -> str:
        head = (
            f"ledger {self.ledger_id}: {self.events} events, {self.transfers} transfers, "
            f"{self.accounts} accounts rebuilt from the event stream"
        )
        lines = [head, f"  journal: {self.journal}"]
        if self.ok:
            lines.append("  balances from the events = stored balances = the journal: OK")
        else:
            lines += [f"  PROBLEM: {problem}" for problem in self.problems]
        return "\n".join(lines)


@dataclass
class _ReadModel:
    """What a consumer of the events alone knows: accounts and their four balances."""

    balances: dict[str, list[int]] = field(default_factory=dict)
    next_transfer: int = 1


async def replay_ledger(
    ledger_id: str, events: EventLog, queries: LedgerQueries, verify: VerifyLedgerHandler
) -> ReplayReport:
    report = ReplayReport(ledger_id)
    verified = await verify(VerifyLedger(ledger_id))
    report.journal = "hash chain and balances match the journal" if verified.ok else "FAILED"
    report.problems += [f"journal: {problem}" for problem in verified.problems]

    model = _ReadModel()
    after = 0
    while chunk := await events.read(ledger_id, after=after, limit=_READ_CHUNK):
        for envelope in chunk:
            if envelope.sequence != after + 1:
                report.problems.append(
                    f"event stream has a gap: sequence {envelope.sequence} after {after}"
                )
            after = envelope.sequence
            report.events += 1
            try:
                message = decode_envelope(envelope)
            except UnknownEventError as error:
                report.problems.append(f"event {envelope.sequence}: {error}")
                continue
            _apply(model, envelope.sequence, message, report)
    report.accounts = len(model.balances)
    report.transfers = model.next_transfer - 1
    if report.transfers != verified.transfers:
        report.problems.append(
            f"the events carry {report.transfers} transfers, the chain has {verified.transfers}"
        )
    await _compare_with_stored(ledger_id, model, queries, report)
    return report


def _apply(model: _ReadModel, sequence: int, message: object, report: ReplayReport) -> None:
    if isinstance(message, events_pb.AccountCreated):
        if message.account.id in model.balances:
            report.problems.append(f"event {sequence}: account {message.account.id} created twice")
        model.balances[message.account.id] = [0, 0, 0, 0]
    # Status and metadata changes move no money: they need only name an account created before.
    elif isinstance(message, ACCOUNT_MESSAGES) and message.account.id not in model.balances:
        report.problems.append(f"event {sequence}: account {message.account.id} never created")
    elif isinstance(message, TRANSFER_MESSAGES):
        transfer = message.transfer
        if transfer.sequence != model.next_transfer:
            report.problems.append(
                f"event {sequence}: transfer {transfer.id} is chain position "
                f"{transfer.sequence}, expected {model.next_transfer}"
            )
        model.next_transfer = transfer.sequence + 1
        for entry in message.entries:
            _apply_entry(model, sequence, entry, report)


def _apply_entry(model: _ReadModel, sequence: int, entry: pb.Entry, report: ReplayReport) -> None:
    balance = model.balances.get(entry.account)
    if balance is None:
        report.problems.append(f"event {sequence}: entry for unknown account {entry.account}")
        balance = model.balances.setdefault(entry.account, [0, 0, 0, 0])
    slot = (0 if entry.layer == pb.Entry.POSTED else 2) + (0 if entry.side == pb.Entry.DEBIT else 1)
    balance[slot] += entry.amount
    after = entry.balance_after
    carried = [
        after.posted_debits,
        after.posted_credits,
        after.pending_debits,
        after.pending_credits,
    ]
    if balance != carried:
        report.problems.append(
            f"event {sequence}: {entry.account} is {balance} by the events so far, "
            f"but the entry says {carried}"
        )


async def _compare_with_stored(
    ledger_id: str, model: _ReadModel, queries: LedgerQueries, report: ReplayReport
) -> None:
    stored_ids: set[str] = set()
    cursor: str | None = None
    while True:
        page = await queries.list_accounts(ledger_id, cursor=cursor, limit=_READ_CHUNK)
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


def _four(balances: Balances) -> list[int]:
    return [
        balances.posted_debits,
        balances.posted_credits,
        balances.pending_debits,
        balances.pending_credits,
    ]
