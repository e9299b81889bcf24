from types import MappingProxyType

import pytest

from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.kernel.metadata import (
    EMPTY_METADATA,
    MAX_METADATA_ENTRIES,
    MAX_METADATA_KEY,
    MAX_METADATA_VALUE,
    check_metadata,
)


def test_none_is_empty() -> None:
    assert check_metadata(None) is EMPTY_METADATA


def test_returns_a_read_only_copy() -> None:
    source = {"team": "payments"}

    checked = check_metadata(source)
    source["team"] = "changed"

    assert checked == {"team": "payments"}
    assert isinstance(checked, MappingProxyType)


def test_accepts_the_limits_exactly() -> None:
    at_limit = {f"k{i}": "v" for i in range(MAX_METADATA_ENTRIES)}
    longest = {"k" * MAX_METADATA_KEY: "v" * MAX_METADATA_VALUE, "empty": ""}

    assert check_metadata(at_limit) == at_limit
    assert check_metadata(longest) == longest


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({f"k{i}": "v" for i in range(MAX_METADATA_ENTRIES + 1)}, "metadata"),
        ({"k" * (MAX_METADATA_KEY + 1): "v"}, "metadata"),
        ({"": "v"}, "metadata"),
        ({"has space": "v"}, "metadata"),
        ({"a/b": "v"}, "metadata"),
        ({"$.path": "v"}, "metadata"),
        ({"k": "nul\x00"}, "metadata.k"),
        ({"k": "\udc00"}, "metadata.k"),
        ({1: "v"}, "metadata"),
        ({"k": "v" * (MAX_METADATA_VALUE + 1)}, "metadata.k"),
        ({"k": 1}, "metadata.k"),
        ({"k": None}, "metadata.k"),
        (["k", "v"], "metadata"),
        ("k=v", "metadata"),
    ],
)
def test_rejects(value: object, field: str) -> None:
    with pytest.raises(LedgerdError) as caught:
        check_metadata(value)

    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    assert caught.value.details == {"field": field}


def test_field_name_is_reported() -> None:
    with pytest.raises(LedgerdError) as caught:
        check_metadata(["not", "a", "mapping"], "metadata filter")

    assert caught.value.details == {"field": "metadata filter"}
