from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.money import MAX_AMOUNT, MAX_SCALE, Asset, check_amount


@pytest.mark.parametrize(
    ("text", "code", "scale"),
    [("USD/2", "USD", 2), ("JPY/0", "JPY", 0), ("BTC/8", "BTC", 8), ("X1/18", "X1", 18)],
)
def test_parse_reads_code_and_scale(text: str, code: str, scale: int) -> None:
    asset = Asset.parse(text)

    assert asset == Asset(code, scale)
    assert str(asset) == text


@pytest.mark.parametrize(
    "text",
    [
        "USD",
        "USD/",
        "/2",
        "usd/2",
        "U/2",
        "USD/-1",
        "USD/2.0",
        "USD/19",
        "USD/ 2",
        "USD 2",
        "ABCDEFGHIJKLMNOPQ/2",
        "USD\n/2",
        "",
    ],
)
def test_parse_rejects_malformed_assets(text: str) -> None:
    with pytest.raises(LedgerdError) as caught:
        Asset.parse(text)

    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    assert caught.value.details == {"field": "asset"}


@pytest.mark.parametrize("scale", ["²", "1" * 5000])
def test_parse_rejects_non_ascii_or_huge_scales_as_validation_errors(scale: str) -> None:
    with pytest.raises(LedgerdError) as caught:
        Asset.parse(f"USD/{scale}")

    assert caught.value.code is ErrorCode.VALIDATION_FAILED


@pytest.mark.parametrize(("code", "scale"), [("USD", -1), ("USD", MAX_SCALE + 1), ("usd", 2)])
def test_constructor_validates(code: str, scale: int) -> None:
    with pytest.raises(LedgerdError) as caught:
        Asset(code, scale)

    assert caught.value.code is ErrorCode.VALIDATION_FAILED


@pytest.mark.parametrize(
    ("asset", "amount", "text"),
    [
        ("USD/2", 1234, "12.34"),
        ("USD/2", 5, "0.05"),
        ("USD/2", 0, "0.00"),
        ("USD/2", -5, "-0.05"),
        ("USD/2", -123456, "-1234.56"),
        ("JPY/0", 1234, "1234"),
        ("JPY/0", -7, "-7"),
        ("BTC/8", 1, "0.00000001"),
        ("BTC/8", 2_100_000_000_000_000, "21000000.00000000"),
        ("USD/2", MAX_AMOUNT, "92233720368547758.07"),
    ],
)
def test_format_renders_minor_units_as_a_decimal(asset: str, amount: int, text: str) -> None:
    assert Asset.parse(asset).format(amount) == text


@settings(deadline=None, max_examples=200)
@given(amount=st.integers(-(2**70), 2**70), scale=st.integers(0, MAX_SCALE))
def test_format_is_exact(amount: int, scale: int) -> None:
    text = Asset("ABC", scale).format(amount)

    assert Decimal(text) == Decimal(amount).scaleb(-scale)
    fraction = text.partition(".")[2]
    assert len(fraction) == scale


@pytest.mark.parametrize("amount", [1, 2, 10**18, MAX_AMOUNT])
def test_check_amount_accepts_positive_64_bit_integers(amount: int) -> None:
    assert check_amount(amount) == amount


@pytest.mark.parametrize(
    "amount",
    [0, -1, -(2**63), MAX_AMOUNT + 1, 2**63, 2**64, True, False, 1.0, 10.5, "10", None],
)
def test_check_amount_rejects(amount: object) -> None:
    with pytest.raises(LedgerdError) as caught:
        check_amount(amount, "legs[0].amount")

    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    assert caught.value.details == {"field": "legs[0].amount"}
