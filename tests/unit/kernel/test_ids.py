import pytest

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.ids import check_id, check_id_shape, random_id


@pytest.mark.parametrize(
    "value",
    ["a", "A-z_0.9:x", "acct:alice.savings-1", "x" * 128, "0", "t000001", "...", ".a", "a.", "-"],
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


@pytest.mark.parametrize("value", [".", ".."])
def test_check_id_rejects_the_dot_segments_urls_lose(value: str) -> None:
    # A URL-normalising proxy removes "." and ".." path segments (RFC 3986, 5.2.4), so such an
    # id could be created over gRPC and never reached over REST.
    with pytest.raises(LedgerdError) as caught:
        check_id(value, "ledger_id")

    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    assert caught.value.details == {"field": "ledger_id"}
    assert "'.' or '..'" in caught.value.message


@pytest.mark.parametrize("value", [".", "..", "a", "x" * 128])
def test_the_shape_alone_still_admits_ids_stored_before_the_dot_rule(value: str) -> None:
    # A page cursor names a stored row, which may predate the rule: it must stay usable.
    assert check_id_shape(value, "cursor") == value


@pytest.mark.parametrize("value", ["", "x" * 129, "a/b", None])
def test_the_shape_refuses_what_was_never_an_id(value: object) -> None:
    with pytest.raises(LedgerdError):
        check_id_shape(value, "cursor")


def test_random_ids_are_valid_and_distinct() -> None:
    ids = {random_id() for _ in range(1000)}

    assert len(ids) == 1000
    assert all(check_id(value, "id") == value for value in ids)
