import pytest

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.text import check_text


@pytest.mark.parametrize("value", ["", "plain", "ünïcödé ✓", "x" * 10, "a\tb\nc"])
def test_accepts_storable_text(value: str) -> None:
    assert check_text(value, "name", max_length=10) == value


@pytest.mark.parametrize(
    "value", ["x" * 11, "nul\x00inside", "lone \ud800 surrogate", None, 5, b"bytes"]
)
def test_rejects(value: object) -> None:
    with pytest.raises(LedgerdError) as caught:
        check_text(value, "name", max_length=10)

    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    assert caught.value.details == {"field": "name"}
