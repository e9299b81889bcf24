"""The ledger's published language: its domain values as the protobuf messages of ledgerd.v1.

One rendering for everything that leaves the process: API responses (the gRPC servicer and,
through it, the REST gateway) and event payloads (the outbox), so an event shows a transfer
or an account exactly as the API would have returned it at that moment.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from ledgerd.ledger.domain.model import (
    Account,
    AccountStatus,
    Balances,
    Entry,
    Layer,
    Ledger,
    Side,
    Transfer,
    TransferKind,
    TransferStatus,
)
from ledgerd.v1 import ledger_pb2 as pb

_ACCOUNT_STATUS = {
    AccountStatus.OPEN: pb.Account.OPEN,
    AccountStatus.FROZEN: pb.Account.FROZEN,
    AccountStatus.CLOSED: pb.Account.CLOSED,
}
_TRANSFER_KIND = {
    TransferKind.POSTING: pb.Transfer.POSTING,
    TransferKind.PENDING: pb.Transfer.HOLD,
    TransferKind.CAPTURE: pb.Transfer.CAPTURE,
    TransferKind.VOID: pb.Transfer.VOID,
    TransferKind.EXPIRY: pb.Transfer.EXPIRY,
    TransferKind.REVERSAL: pb.Transfer.REVERSAL,
}
_TRANSFER_STATUS = {
    TransferStatus.POSTED: pb.Transfer.POSTED,
    TransferStatus.PENDING: pb.Transfer.PENDING,
    TransferStatus.CAPTURED: pb.Transfer.CAPTURED,
    TransferStatus.VOIDED: pb.Transfer.VOIDED,
    TransferStatus.EXPIRED: pb.Transfer.EXPIRED,
    TransferStatus.REVERSED: pb.Transfer.REVERSED,
}
# The same tables read backwards, for the API's filters (ListTransfers' kind and status).
TRANSFER_KIND_OF = {value: kind for kind, value in _TRANSFER_KIND.items()}
TRANSFER_STATUS_OF = {value: status for status, value in _TRANSFER_STATUS.items()}
_SIDE = {Side.DEBIT: pb.Entry.DEBIT, Side.CREDIT: pb.Entry.CREDIT}
_LAYER = {Layer.POSTED: pb.Entry.POSTED, Layer.PENDING: pb.Entry.PENDING}


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def balance(balances: Balances, available: int) -> pb.Balance:
    # `available` fits int64: the posting engine refuses a transfer that would take it out
    # (BALANCE_OVERFLOW), as it does for each of the four balances.
    return pb.Balance(
        posted_debits=balances.posted_debits,
        posted_credits=balances.posted_credits,
        pending_debits=balances.pending_debits,
        pending_credits=balances.pending_credits,
        available=available,
    )


def ledger(value: Ledger) -> pb.Ledger:
    return pb.Ledger(
        id=value.id,
        name=value.name,
        metadata=dict(value.metadata),
        created_at=timestamp(value.created_at),
    )


def account(value: Account) -> pb.Account:
    return pb.Account(
        id=value.id,
        ledger=value.ledger_id,
        asset=str(value.asset),
        flags=pb.AccountFlags(
            debits_must_not_exceed_credits=value.flags.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=value.flags.credits_must_not_exceed_debits,
            overdraft_limit=value.flags.overdraft_limit,
        ),
        status=_ACCOUNT_STATUS[value.status],
        metadata=dict(value.metadata),
        balance=balance(value.balances, value.available),
        created_at=timestamp(value.created_at),
        version=value.version,
    )


def transfer(value: Transfer) -> pb.Transfer:
    message = pb.Transfer(
        id=value.id,
        ledger=value.ledger_id,
        idempotency_key=value.idempotency_key,
        legs=[
            pb.Leg(
                debit_account=leg.debit_account,
                credit_account=leg.credit_account,
                amount=leg.amount,
                asset=str(leg.asset),
            )
            for leg in value.legs
        ],
        kind=_TRANSFER_KIND[value.kind],
        status=_TRANSFER_STATUS[value.status],
        metadata=dict(value.metadata),
        created_at=timestamp(value.created_at),
        target_id=value.target_id or "",
        sequence=value.sequence,
        hash=value.hash,
        prev_hash=value.prev_hash,
    )
    if value.kind is TransferKind.PENDING:
        timeout = 0
        if value.expires_at is not None:
            timeout = round((value.expires_at - value.created_at).total_seconds())
            message.expires_at.CopyFrom(timestamp(value.expires_at))
        message.pending.CopyFrom(pb.PendingOptions(timeout_seconds=timeout))
    return message


def entry(value: Entry, normal_side: Side) -> pb.Entry:
    return pb.Entry(
        account=value.account_id,
        sequence=value.account_sequence,
        transfer_id=value.transfer_id,
        transfer_sequence=value.transfer_sequence,
        leg_index=value.leg_index,
        side=_SIDE[value.side],
        layer=_LAYER[value.layer],
        amount=value.amount,
        balance_after=balance(value.balances_after, value.balances_after.available(normal_side)),
        created_at=timestamp(value.created_at),
    )
