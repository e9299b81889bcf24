import base64
from enum import StrEnum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.paging import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    check_page_size,
    decode_cursor,
    decode_int_cursor,
    encode_cursor,
)


@settings(deadline=None)
@given(st.text(min_size=1))
def test_string_cursors_round_trip(position: str) -> None:
    cursor = encode_cursor(position)

    assert "=" not in cursor
    assert decode_cursor(cursor) == position


@settings(deadline=None)
@given(st.integers(0, 2**63 - 1))
def test_int_cursors_round_trip(position: int) -> None:
    assert decode_int_cursor(encode_cursor(position)) == position


def test_no_cursor_means_the_start() -> None:
    assert decode_cursor(None) is None
    assert decode_cursor("") is None
    assert decode_int_cursor(None) is None
    assert decode_int_cursor("") is None


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!!",
        "a",
        "é",
        "not a cursor",
        _raw("v2:5"),
        _raw("v1:"),
        _raw("v1"),
        _raw("5"),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_garbage_cursors_are_validation_errors(cursor: str) -> None:
    with pytest.raises(LedgerdError) as caught:
        decode_cursor(cursor)

    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    assert caught.value.details == {"field": "cursor"}


@pytest.mark.parametrize("position", ["abc", "-1", "1.5", " 1"])
def test_int_cursor_rejects_non_numbers(position: str) -> None:
    with pytest.raises(LedgerdError) as caught:
        decode_int_cursor(encode_cursor(position))

    assert caught.value.code is ErrorCode.VALIDATION_FAILED


@pytest.mark.parametrize("position", ["²", "1" * 5000])
def test_int_cursor_rejects_forged_digit_strings(position: str) -> None:
    with pytest.raises(LedgerdError) as caught:
        decode_int_cursor(encode_cursor(position))

    assert caught.value.code is ErrorCode.VALIDATION_FAILED


@settings(deadline=None)
@given(st.text())
def test_decoding_any_text_is_a_position_or_a_validation_error(cursor: str) -> None:
    code: StrEnum | None = None
    try:
        decode_cursor(cursor)
    except LedgerdError as error:
        code = error.code
    assert code in {None, ErrorCode.VALIDATION_FAILED}


def test_page_size() -> None:
    assert check_page_size(None) == DEFAULT_PAGE_SIZE
    assert check_page_size(1) == 1
    assert check_page_size(MAX_PAGE_SIZE) == MAX_PAGE_SIZE
    for bad in (0, -1, MAX_PAGE_SIZE + 1):
        with pytest.raises(LedgerdError) as caught:
            check_page_size(bad)
        assert caught.value.details == {"field": "page_size"}
