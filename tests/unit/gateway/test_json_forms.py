"""The integer and timestamp spellings: exact, and the same in Python and in JSON Schema."""

import re

import jsonschema_rs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerd.gateway.json_forms import INTEGER_TEXT, TIMESTAMP_TEXT, decimal_range_pattern

INT64 = (-(2**63), 2**63 - 1)
RANGES = [INT64, (0, 2**64 - 1), (1, 2**63 - 1), (0, 1000), (1, 1000), (-1000, 7), (-5, -1)]


@pytest.mark.parametrize(("low", "high"), RANGES)
@given(number=st.integers(min_value=-(2**65), max_value=2**65) | st.sampled_from(range(-9, 10)))
def test_a_range_pattern_matches_exactly_the_numbers_in_range(
    low: int, high: int, number: int
) -> None:
    pattern = decimal_range_pattern(low, high)
    assert bool(re.fullmatch(pattern, str(number))) == (low <= number <= high)


@pytest.mark.parametrize(("low", "high"), RANGES)
def test_a_range_pattern_matches_its_bounds_and_not_one_past(low: int, high: int) -> None:
    pattern = re.compile(decimal_range_pattern(low, high))
    assert pattern.fullmatch(str(low))
    assert pattern.fullmatch(str(high))
    assert not pattern.fullmatch(str(low - 1))
    assert not pattern.fullmatch(str(high + 1))


@pytest.mark.parametrize(("low", "high"), RANGES)
@given(text=st.text(alphabet="+-0123456789 _\u0663", max_size=22))
def test_a_range_pattern_matches_only_plain_decimals(low: int, high: int, text: str) -> None:
    if re.fullmatch(decimal_range_pattern(low, high), text):
        assert INTEGER_TEXT.fullmatch(text)


@pytest.mark.parametrize(("low", "high"), RANGES)
@given(number=st.integers(min_value=-(2**65), max_value=2**65))
def test_json_schema_reads_a_range_pattern_as_python_does(low: int, high: int, number: int) -> None:
    # jsonschema_rs implements ECMA-262 regexes: the document's readers see the same range.
    validator = jsonschema_rs.validator_for({"pattern": decimal_range_pattern(low, high)})
    assert validator.is_valid(str(number)) == (low <= number <= high)


def test_an_empty_range_has_no_pattern() -> None:
    with pytest.raises(ValueError, match="empty range"):
        decimal_range_pattern(2, 1)


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("2024-02-29T23:59:59Z", True),
        ("2024-02-29T23:59:59.123456789-07:30", True),
        ("2024-02-29T23:59:59.1234567891Z", False),
        ("2024-02-29t23:59:59z", False),
        ("2024-02-29T23:59:60Z", False),
        ("2024-2-29T23:59:59Z", False),
        ("2024-02-29T23:59:59", False),
        ("2024-02-29 23:59:59Z", False),
        ("2024-02-29T23:59:59+0100", False),
    ],
)
def test_timestamps_follow_rfc_3339_as_protobuf_reads_it(text: str, *, valid: bool) -> None:
    assert bool(TIMESTAMP_TEXT.fullmatch(text)) is valid
    assert jsonschema_rs.validator_for({"pattern": TIMESTAMP_TEXT.pattern}).is_valid(text) is valid
