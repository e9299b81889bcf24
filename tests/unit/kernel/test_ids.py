import pytest

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.ids import check_id, random_id


@pytest.mark.parametrize(
    "value", ["a", "A-z_0.9:x", "acct:alice.savings-1", "x" * 128, "0", "t000001"]
)
def test_check_id_accepts_well_formed_ids(value: str) -> None:
    assert check_id(value, "account_id") == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "x" * 129,
        "has space",
        "slash/inside",
        "capture/t1",  # derived idempotency keys use "/" so they never collide with a client's
        "new\nline",
        "trailing\n",
        "é",
        "semi;colon",
        None,
        42,
        b"bytes",
    ],
)
def test_check_id_rejects(value: object) -> None:
    with pytest.raises(LedgerdError) as caught:
        check_id(value, "account_id")

    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    assert caught.value.details == {"field": "account_id"}


def test_random_ids_are_valid_and_distinct() -> None:
    ids = {random_id() for _ in range(1000)}

    assert len(ids) == 1000
    assert all(check_id(value, "id") == value for value in ids)
