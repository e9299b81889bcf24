from datetime import timedelta

import pytest

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.ledger.domain.requests import (
    MAX_LEGS,
    MAX_PENDING_TIMEOUT_SECONDS,
    CaptureRequest,
    ExpiryRequest,
    LegRequest,
    PostingRequest,
    ReversalRequest,
    TransferRequest,
    VoidRequest,
    target_of,
)
from tests.unit.ledger.domain.book import EUR, USD, pay


def _error(request: PostingRequest) -> LedgerdError:
    with pytest.raises(LedgerdError) as caught:
        request.check()
    return caught.value


def test_fingerprint_depends_on_the_body_only() -> None:
    request = pay("k1", ("a", "b", 5))

    assert request.fingerprint() == pay("k2", ("a", "b", 5)).fingerprint()
    assert len(request.fingerprint()) == 64


@pytest.mark.parametrize(
    "other",
    [
        pay("k", ("a", "b", 6)),
        pay("k", ("b", "a", 5)),
        pay("k", ("a", "c", 5)),
        pay("k", ("a", "b", 5), ("a", "b", 5)),
        pay("k", ("a", "b", 5), pending=True),
        pay("k", ("a", "b", 5), pending=True, timeout=1),
        pay("k", ("a", "b", 5), asset=USD),
        TransferRequest("k", (LegRequest("a", "b", 5),), metadata={"x": "y"}),
    ],
)
def test_fingerprint_sees_every_part_of_a_transfer(other: TransferRequest) -> None:
    assert pay("k", ("a", "b", 5)).fingerprint() != other.fingerprint()


def test_explicit_assets_are_part_of_the_body() -> None:
    assert pay("k", ("a", "b", 5), asset=USD).fingerprint() != (
        pay("k", ("a", "b", 5), asset=EUR).fingerprint()
    )


def test_settlement_fingerprints() -> None:
    assert CaptureRequest("p").fingerprint() != CaptureRequest("p", amount=1).fingerprint()
    assert CaptureRequest("p").fingerprint() == CaptureRequest("p", None, "k").fingerprint()
    assert CaptureRequest("p").fingerprint() != VoidRequest("p").fingerprint()
    assert VoidRequest("p").fingerprint() != VoidRequest("p", metadata={"a": "b"}).fingerprint()
    assert VoidRequest("p").fingerprint() != ExpiryRequest("p").fingerprint()
    assert ReversalRequest("t").fingerprint() != ReversalRequest("u").fingerprint()


def test_keys_are_explicit_or_derived_from_the_target() -> None:
    assert pay("k", ("a", "b", 1)).key == "k"
    assert CaptureRequest("p").key == "capture/p"
    assert CaptureRequest("p", idempotency_key="mine").key == "mine"
    assert VoidRequest("p").key == "void/p"
    assert ExpiryRequest("p").key == "expire/p"
    assert ReversalRequest("t").key == "reverse/t"
    assert ReversalRequest("t", idempotency_key="r").key == "r"


def test_target_of() -> None:
    assert target_of(pay("k", ("a", "b", 1))) is None
    assert target_of(CaptureRequest("p")) == "p"
    assert target_of(VoidRequest("p")) == "p"
    assert target_of(ExpiryRequest("p")) == "p"
    assert target_of(ReversalRequest("t")) == "t"


def test_timeout() -> None:
    assert pay("k", ("a", "b", 1), pending=True).timeout is None
    assert pay("k", ("a", "b", 1), pending=True, timeout=90).timeout == timedelta(seconds=90)


def test_longest_timeout_and_most_legs_are_accepted() -> None:
    pay("k", *[("a", "b", 1)] * MAX_LEGS, pending=True, timeout=MAX_PENDING_TIMEOUT_SECONDS).check()


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pay("k"), "legs"),
        (pay("k", *[("a", "b", 1)] * (MAX_LEGS + 1)), "legs"),
        (pay("k", ("a", "b", 1), ("a", "a", 1)), "legs[1]"),
        (pay("k", ("a", "b", 1), ("a", "b", 0)), "legs[1].amount"),
        (pay("k", ("a b", "b", 1)), "legs[0].debit_account"),
        (pay("k", ("a", "", 1)), "legs[0].credit_account"),
        (pay("", ("a", "b", 1)), "idempotency_key"),
        (pay("k", ("a", "b", 1), timeout=1), "pending.timeout_seconds"),
        (pay("k", ("a", "b", 1), pending=True, timeout=-1), "pending.timeout_seconds"),
        (
            pay("k", ("a", "b", 1), pending=True, timeout=MAX_PENDING_TIMEOUT_SECONDS + 1),
            "pending.timeout_seconds",
        ),
        (
            TransferRequest("k", (LegRequest("a", "b", 1),), pending=True, timeout_seconds=True),
            "pending.timeout_seconds",
        ),
        (
            TransferRequest("k", (LegRequest("a", "b", 1),), metadata={"": "x"}),
            "metadata",
        ),
        (CaptureRequest("p", amount=-5), "amount"),
        (CaptureRequest("p/q"), "pending_id"),
        (CaptureRequest("p", idempotency_key="a/b"), "idempotency_key"),
        (VoidRequest("p", idempotency_key=""), "idempotency_key"),
        (ExpiryRequest(""), "pending_id"),
        (ReversalRequest("t", metadata={"k": "v" * 1025}), "metadata.k"),
    ],
)
def test_check_rejects(request_: PostingRequest, field: str) -> None:
    error = _error(request_)

    assert error.code is ErrorCode.VALIDATION_FAILED
    assert error.details == {"field": field}
