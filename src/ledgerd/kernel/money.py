"""Assets and amounts. Amounts are integers in minor units, never floats."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ledgerd.kernel.errors import validation_error
from ledgerd.kernel.rules import IntegerRule, TextRule

# Balances are stored as signed 64-bit integers, so no amount or balance may exceed this.
MAX_AMOUNT = 2**63 - 1
MAX_SCALE = 18
_CODE = r"[A-Z][A-Z0-9]{1,15}"
_ASSET_CODE = re.compile(f"^{_CODE}$")
# What Asset.parse accepts, in one pattern: the code, '/', and a scale of 0 to MAX_SCALE (18)
# in at most two digits, a leading zero allowed as int() reads it.
ASSET_PATTERN = re.compile(rf"^{_CODE}/(?:0?[0-9]|1[0-8])$")
ASSET_RULE = TextRule(pattern=ASSET_PATTERN.pattern)
# What check_amount accepts.
AMOUNT_RULE = IntegerRule(1, MAX_AMOUNT)


@dataclass(frozen=True, slots=True)
class Asset:
    """An asset code with its scale: ``USD/2`` means amounts are counted in cents."""

    code: str
    scale: int

    def __post_init__(self) -> None:
        _check_asset(self.code, self.scale, "asset")

    @classmethod
    def parse(cls, text: str, field: str = "asset") -> Asset:
        """Read ``CODE/SCALE``; errors name ``field``, the path the text came from."""
        code, slash, scale = text.partition("/")
        # isdigit() alone admits digits int() refuses ("²") and absurdly long numbers.
        if not slash or not (scale.isascii() and scale.isdigit() and len(scale) <= 2):  # noqa: PLR2004 - MAX_SCALE has two digits
            raise validation_error(field, f"{text!r} is not of the form CODE/SCALE, e.g. USD/2")
        number = int(scale)
        # Checked here, not left to the constructor, so that the error names ``field``.
        _check_asset(code, number, field)
        return cls(code, number)

    def __str__(self) -> str:
        return f"{self.code}/{self.scale}"

    def format(self, amount: int) -> str:
        """Render minor units as a decimal string, e.g. 1234 USD/2 -> ``12.34``."""
        sign = "-" if amount < 0 else ""
        digits = str(abs(amount)).rjust(self.scale + 1, "0")
        if self.scale == 0:
            return f"{sign}{digits}"
        return f"{sign}{digits[: -self.scale]}.{digits[-self.scale :]}"


def _check_asset(code: str, scale: int, field: str) -> None:
    if not _ASSET_CODE.fullmatch(code):
        raise validation_error(field, f"code {code!r} must match {_ASSET_CODE.pattern}")
    if not 0 <= scale <= MAX_SCALE:
        raise validation_error(field, f"scale must be between 0 and {MAX_SCALE}")


def check_amount(amount: object, field: str = "amount") -> int:
    """Return ``amount`` if it is an int in ``1..MAX_AMOUNT``, else raise VALIDATION_FAILED."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise validation_error(field, "must be an integer number of minor units")
    if not 0 < amount <= MAX_AMOUNT:
        raise validation_error(field, f"must be between 1 and {MAX_AMOUNT}")
    return amount
