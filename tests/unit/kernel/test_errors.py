import pytest

from ledgerd.kernel.errors import (
    ConcurrencyConflictError,
    ErrorCode,
    LedgerdError,
    validation_error,
)
from ledgerd.ledger.domain.errors import LedgerErrorCode


def test_equal_when_code_message_and_details_are() -> None:
    first = LedgerdError(LedgerErrorCode.ACCOUNT_NOT_FOUND, "account a", {"account": "a"})
    second = LedgerdError(LedgerErrorCode.ACCOUNT_NOT_FOUND, "account a", {"account": "a"})

    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second}) == 1


@pytest.mark.parametrize(
    "other",
    [
        LedgerdError(LedgerErrorCode.ACCOUNT_FROZEN, "account a", {"account": "a"}),
        LedgerdError(LedgerErrorCode.ACCOUNT_NOT_FOUND, "account b", {"account": "a"}),
        LedgerdError(LedgerErrorCode.ACCOUNT_NOT_FOUND, "account a", {"account": "b"}),
        LedgerdError(LedgerErrorCode.ACCOUNT_NOT_FOUND, "account a"),
    ],
)
def test_differs_in_any_part(other: LedgerdError) -> None:
    assert LedgerdError(LedgerErrorCode.ACCOUNT_NOT_FOUND, "account a", {"account": "a"}) != other


def test_not_equal_to_other_types() -> None:
    error = LedgerdError(ErrorCode.VALIDATION_FAILED, "x")

    assert error != "VALIDATION_FAILED: x"
    assert error != ValueError("VALIDATION_FAILED: x")


def test_details_are_a_read_only_copy() -> None:
    details = {"field": "amount"}
    error = LedgerdError(ErrorCode.VALIDATION_FAILED, "amount: bad", details)
    details["field"] = "changed"

    assert error.details == {"field": "amount"}
    with pytest.raises(TypeError):
        error.details["field"] = "x"  # type: ignore[index]


def test_message_and_repr() -> None:
    error = validation_error("amount", "must be positive")

    assert error.code is ErrorCode.VALIDATION_FAILED
    assert error.message == "amount: must be positive"
    assert str(error) == "VALIDATION_FAILED: amount: must be positive"
    assert repr(error) == "LedgerdError(VALIDATION_FAILED, 'amount: must be positive')"


def test_concurrency_conflict_carries_its_code() -> None:
    error = ConcurrencyConflictError("lost a race")

    assert isinstance(error, LedgerdError)
    assert error.code is ErrorCode.CONCURRENCY_CONFLICT
    assert error.details == {}
