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
from ledgerd.ledger.application.queries.balances import AccountBalance
from ledgerd.ledger.domain.model import AccountFlags, TransferKind, TransferStatus
from ledgerd.ledger.domain.requests import LegRequest, TransferRequest
from ledgerd.ledger.published.protobuf import (
    TRANSFER_KIND_OF,
    TRANSFER_STATUS_OF,
    account,
    balance,
    entry,
    ledger,
    timestamp,
    transfer,
)
from ledgerd.v1 import ledger_pb2 as pb

# Re-exported: the API renders its resources with the same functions as the events.
__all__ = ["account", "balance", "entry", "ledger", "timestamp", "transfer"]


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


def creation_range(
    request: pb.ListTransfersRequest | pb.ListEntriesRequest,
) -> tuple[datetime | None, datetime | None]:
    """The ``[start_time, end_time)`` filter of a listing in whole microseconds, kept exact.

    Creation times are whole microseconds, so for any of them ``c``: ``t <= c`` iff
    ``up(t) <= c``, and ``c < t`` iff ``c < up(t)``, where ``up`` rounds up to a microsecond.
    Both bounds therefore round up; truncating them would admit a transfer (or entry) created
    in ``start_time``'s microsecond but before it, and drop one created in ``end_time``'s
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


def transfer_kind(value: pb.Transfer.Kind.ValueType) -> TransferKind | None:
    """ListTransfers' ``kind`` filter; None (every kind) when unset."""
    if value == pb.Transfer.KIND_UNSPECIFIED:
        return None
    if value not in TRANSFER_KIND_OF:  # a number a newer client may send (proto3 enums are open)
        raise validation_error("kind", f"{value} is not a Transfer.Kind")
    return TRANSFER_KIND_OF[value]


def transfer_status(value: pb.Transfer.Status.ValueType) -> TransferStatus | None:
    """ListTransfers' ``status`` filter; None (every status) when unset."""
    if value == pb.Transfer.STATUS_UNSPECIFIED:
        return None
    if value not in TRANSFER_STATUS_OF:
        raise validation_error("status", f"{value} is not a Transfer.Status")
    return TRANSFER_STATUS_OF[value]


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
    """``["tier=gold", "region=eu"]`` → ``{"tier": "gold", "region": "eu"}``.

    A key named twice is refused rather than read as its last value: the client asked for two
    values of one key, which no account has (and the filter's size would be misjudged).
    """
    selected: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise validation_error("metadata", f"filter {pair!r} is not of the form KEY=VALUE")
        if key in selected:
            raise validation_error("metadata", f"filter names the key {key!r} twice")
        selected[key] = value
    return selected
