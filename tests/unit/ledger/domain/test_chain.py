import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ledgerd.ledger.domain.chain import chained_hash
from ledgerd.ledger.domain.model import (
    GENESIS_HASH,
    Leg,
    Transfer,
    TransferKind,
    TransferStatus,
)
from tests.unit.ledger.domain.book import EUR, USD

T0 = datetime(2024, 1, 1, tzinfo=UTC)

TRANSFER = Transfer(
    ledger_id="L",
    id="t1",
    sequence=1,
    kind=TransferKind.PENDING,
    status=TransferStatus.PENDING,
    idempotency_key="k1",
    request_hash="f" * 64,
    legs=(Leg("a", "b", 10, USD),),
    metadata={"note": "x"},
    created_at=T0,
    expires_at=T0 + timedelta(minutes=1),
    target_id=None,
)


def test_hash_is_deterministic_and_hex() -> None:
    first = chained_hash(TRANSFER, GENESIS_HASH)

    assert first == chained_hash(dataclasses.replace(TRANSFER), GENESIS_HASH)
    assert len(first) == 64
    assert int(first, 16) >= 0


def test_hash_depends_on_the_predecessor() -> None:
    assert chained_hash(TRANSFER, GENESIS_HASH) != chained_hash(TRANSFER, "1" * 64)


def test_prev_hash_and_hash_fields_themselves_are_not_content() -> None:
    # The predecessor is passed explicitly; the stored fields do not feed the hash.
    stored = dataclasses.replace(TRANSFER, prev_hash="2" * 64, hash="3" * 64)

    assert chained_hash(stored, GENESIS_HASH) == chained_hash(TRANSFER, GENESIS_HASH)


def test_status_is_left_out() -> None:
    captured = dataclasses.replace(TRANSFER, status=TransferStatus.CAPTURED)

    assert chained_hash(captured, GENESIS_HASH) == chained_hash(TRANSFER, GENESIS_HASH)


def test_instants_are_hashed_as_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    same_instant = dataclasses.replace(
        TRANSFER,
        created_at=T0.astimezone(plus_two),
        expires_at=TRANSFER.expires_at.astimezone(plus_two) if TRANSFER.expires_at else None,
    )

    assert chained_hash(same_instant, GENESIS_HASH) == chained_hash(TRANSFER, GENESIS_HASH)


ALTERATIONS: dict[str, Callable[[Transfer], Transfer]] = {
    "ledger_id": lambda t: dataclasses.replace(t, ledger_id="M"),
    "id": lambda t: dataclasses.replace(t, id="t2"),
    "sequence": lambda t: dataclasses.replace(t, sequence=2),
    "kind": lambda t: dataclasses.replace(t, kind=TransferKind.POSTING),
    "idempotency_key": lambda t: dataclasses.replace(t, idempotency_key="k2"),
    "request_hash": lambda t: dataclasses.replace(t, request_hash="e" * 64),
    "legs.amount": lambda t: dataclasses.replace(t, legs=(Leg("a", "b", 11, USD),)),
    "legs.account": lambda t: dataclasses.replace(t, legs=(Leg("a", "c", 10, USD),)),
    "legs.swapped": lambda t: dataclasses.replace(t, legs=(Leg("b", "a", 10, USD),)),
    "legs.asset": lambda t: dataclasses.replace(t, legs=(Leg("a", "b", 10, EUR),)),
    "legs.added": lambda t: dataclasses.replace(t, legs=(*t.legs, Leg("a", "b", 1, USD))),
    "metadata": lambda t: dataclasses.replace(t, metadata={"note": "y"}),
    "created_at": lambda t: dataclasses.replace(t, created_at=T0 + timedelta(microseconds=1)),
    "expires_at": lambda t: dataclasses.replace(t, expires_at=None),
    "target_id": lambda t: dataclasses.replace(t, target_id="t0"),
}


@pytest.mark.parametrize("alter", ALTERATIONS.values(), ids=ALTERATIONS.keys())
def test_every_content_field_is_hashed(alter: Callable[[Transfer], Transfer]) -> None:
    assert chained_hash(alter(TRANSFER), GENESIS_HASH) != chained_hash(TRANSFER, GENESIS_HASH)
