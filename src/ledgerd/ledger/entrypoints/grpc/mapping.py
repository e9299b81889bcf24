"""Translation between the API's protobuf messages and the ledger's domain values.

Input conversion only reshapes; every rule (id patterns, amount bounds, metadata limits) is
checked by the domain, so the API cannot accept what the ledger would refuse.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from ledgerd.kernel.errors import LedgerdError, validation_error
from ledgerd.kernel.money import Asset
from ledgerd.ledger.application.post_transfers import Malformed
from ledgerd.ledger.application.queries import AccountBalance
from ledgerd.ledger.domain.model import (
    Account,
    AccountFlags,
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
from ledgerd.ledger.domain.requests import LegRequest, TransferRequest
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
_SIDE = {Side.DEBIT: pb.Entry.DEBIT, Side.CREDIT: pb.Entry.CREDIT}
_LAYER = {Layer.POSTED: pb.Entry.POSTED, Layer.PENDING: pb.Entry.PENDING}


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def instant(value: Timestamp, field: str) -> datetime:
    """``value`` rounded down to a whole microsecond, the precision of a datetime.

    Right for an "at or before" bound such as ``as_of``: instants are stored in whole
    microseconds, and such an instant is at or before ``value`` iff it is at or before the
    microsecond ``value`` falls in.
    """
    try:
        return value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise validation_error(field, "is not a representable instant") from None


_NANOS_PER_MICROSECOND = 1_000
_LAST_INSTANT = datetime.max.replace(tzinfo=UTC)


def _rounded_up(value: Timestamp, field: str) -> datetime | None:
    """``value`` rounded up to a whole microsecond; None when that is past every datetime."""
    floor = instant(value, field)
    if value.nanos % _NANOS_PER_MICROSECOND == 0:
        return floor
    try:
        return floor + timedelta(microseconds=1)
    except OverflowError:
        return None  # within the last microsecond of year 9999


def creation_range(request: pb.ListTransfersRequest) -> tuple[datetime | None, datetime | None]:
    """The ``[start_time, end_time)`` filter of a listing in whole microseconds, kept exact.

    Creation times are whole microseconds, so for any of them ``c``: ``t <= c`` iff
    ``up(t) <= c``, and ``c < t`` iff ``c < up(t)``, where ``up`` rounds up to a microsecond.
    Both bounds therefore round up; truncating them would admit a transfer created in
    ``start_time``'s microsecond but before it, and drop one created in ``end_time``'s
    microsecond but before it.
    """
    end = _rounded_up(request.end_time, "end_time") if request.HasField("end_time") else None
    # An end_time rounding past every datetime bounds nothing: end stays None.
    if not request.HasField("start_time"):
        return None, end
    start = _rounded_up(request.start_time, "start_time")
    if start is None:
        # Nothing can be created at or after it; [last, last) is empty on every database.
        return _LAST_INSTANT, _LAST_INSTANT
    return start, end


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


def account_balance(value: AccountBalance, as_of: Timestamp | None) -> pb.AccountBalance:
    """``as_of`` is the request's own: echoed to the nanosecond, not the microsecond used."""
    message = pb.AccountBalance(
        ledger=value.account.ledger_id,
        account=value.account.id,
        asset=str(value.account.asset),
        balance=balance(value.balances, value.available),
    )
    if as_of is not None:
        message.as_of.CopyFrom(as_of)
    return message


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


def error(value: LedgerdError) -> pb.Error:
    return pb.Error(code=str(value.code), message=value.message, details=dict(value.details))


def asset(text: str, field: str) -> Asset:
    if not text:
        raise validation_error(field, "is required, e.g. USD/2")
    return Asset.parse(text, field)


def flags(value: pb.AccountFlags) -> AccountFlags:
    return AccountFlags(
        debits_must_not_exceed_credits=value.debits_must_not_exceed_credits,
        credits_must_not_exceed_debits=value.credits_must_not_exceed_debits,
        overdraft_limit=value.overdraft_limit,
    )


def transfer_request(value: pb.TransferInput, field: str = "transfer") -> TransferRequest:
    legs = tuple(
        LegRequest(
            debit_account=leg.debit_account,
            credit_account=leg.credit_account,
            amount=leg.amount,
            asset=asset(leg.asset, f"{field}.legs[{index}].asset") if leg.asset else None,
        )
        for index, leg in enumerate(value.legs)
    )
    pending = value.HasField("pending")
    return TransferRequest(
        idempotency_key=value.idempotency_key,
        legs=legs,
        pending=pending,
        timeout_seconds=value.pending.timeout_seconds if pending else 0,
        metadata=dict(value.metadata),
    )


def batch_item(value: pb.TransferInput, field: str) -> TransferRequest | Malformed:
    """One item of a batch; one that cannot be decoded fails in its place, not the call."""
    try:
        return transfer_request(value, field)
    except LedgerdError as error:
        return Malformed(error)


def metadata_filter(pairs: Iterable[str]) -> dict[str, str]:
    """``["tier=gold", "region=eu"]`` → ``{"tier": "gold", "region": "eu"}``."""
    selected: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise validation_error("metadata", f"filter {pair!r} is not of the form KEY=VALUE")
        selected[key] = value
    return selected
