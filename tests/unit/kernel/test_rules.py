"""Each rule admits exactly what its check accepts: the rules are what API documents state."""

import functools
import re

from hypothesis import given
from hypothesis import strategies as st

from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.ids import ID_RULE, check_id
from ledgerd.kernel.metadata import METADATA_RULE, check_metadata
from ledgerd.kernel.money import AMOUNT_RULE, ASSET_RULE, Asset, check_amount
from ledgerd.kernel.paging import PAGE_SIZE_RULE, check_page_size
from ledgerd.kernel.rules import IntegerRule, TextRule
from ledgerd.kernel.text import check_text, text_rule
from ledgerd.ledger.domain.requests import KEY_RULE, check_key

# Text near the rules' edges: their own characters, a few others, and arbitrary text.
_NEAR = st.text(alphabet="AZaz09_:.-/ \x00\n\u00e9\u0663", max_size=140)
_TEXT = _NEAR | st.text(max_size=140)


def _admits(rule: TextRule, value: str) -> bool:
    if rule.pattern is not None and not re.fullmatch(rule.pattern, value):
        return False
    if rule.max_length is not None and len(value) > rule.max_length:
        return False
    return value not in rule.excluded


def _in(rule: IntegerRule, value: int) -> bool:
    return rule.minimum <= value <= rule.maximum


def _accepts(check: object, *args: object) -> bool:
    try:
        check(*args)  # type: ignore[operator]
    except LedgerdError:
        return False
    return True


@given(value=_TEXT | st.sampled_from([".", "..", "...", "a" * 128, "a" * 129]))
def test_id_rule(value: str) -> None:
    assert _admits(ID_RULE, value) == _accepts(check_id, value, "id")


@given(value=_TEXT | st.from_regex(ASSET_RULE.pattern or "", fullmatch=True))
def test_asset_rule(value: str) -> None:
    assert _admits(ASSET_RULE, value) == _accepts(Asset.parse, value)


@given(value=st.integers(min_value=-(2**64), max_value=2**64))
def test_amount_rule(value: int) -> None:
    assert _in(AMOUNT_RULE, value) == _accepts(check_amount, value)


@given(value=st.integers(min_value=-5, max_value=5000))
def test_page_size_rule(value: int) -> None:
    assert _in(PAGE_SIZE_RULE, value) == _accepts(check_page_size, value)


@given(value=_TEXT, max_length=st.integers(min_value=0, max_value=150))
def test_text_rule(value: str, max_length: int) -> None:
    # Lone surrogates, which check_text also refuses, are not something a pattern can say.
    rule = text_rule(max_length)
    check = functools.partial(check_text, max_length=max_length)
    assert _admits(rule, value) == _accepts(check, value, "text")


@given(
    metadata=st.dictionaries(
        _NEAR | st.from_regex(METADATA_RULE.keys.pattern or "", fullmatch=True),
        _TEXT,
        max_size=METADATA_RULE.max_entries + 2,
    )
)
def test_metadata_rule(metadata: dict[str, str]) -> None:
    rule = METADATA_RULE
    admitted = len(metadata) <= rule.max_entries and all(
        _admits(rule.keys, key) and _admits(rule.values, value) for key, value in metadata.items()
    )
    assert admitted == _accepts(check_metadata, metadata)


_KEYS = st.sampled_from(["capture", "void", "expire", "reverse", "teleport", ""]).flatmap(
    lambda operation: (_NEAR | st.sampled_from([".", "..", "x"])).map(
        lambda rest: f"{operation}/{rest}" if operation else rest
    )
)


@given(value=_TEXT | _KEYS)
def test_idempotency_key_rule(value: str) -> None:
    # A ledger rule, tested here beside the kernel's rules, with the same helpers.
    assert _admits(KEY_RULE, value) == _accepts(check_key, value)
