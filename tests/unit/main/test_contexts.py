"""The enabled contexts, as the composition root sees them, fit together."""

from __future__ import annotations

import pytest

from ledgerd.main.bounded_context import services_of
from ledgerd.main.contexts import ENABLED_CONTEXTS
from ledgerd.main.contexts.ledger import LEDGER
from ledgerd.platform.api.errors import ERROR_CODES


def test_every_contexts_error_code_has_a_transport_mapping_and_one_owner() -> None:
    owners: dict[str, list[str]] = {}
    for context in ENABLED_CONTEXTS:
        for code in context.error_codes:
            owners.setdefault(str(code), []).append(context.name)
            assert ERROR_CODES.code_of(str(code)) is code, f"{context.name}'s {code} unregistered"
    shared = {code: names for code, names in owners.items() if len(names) > 1}
    assert not shared, f"codes claimed by more than one context: {shared}"


def test_context_names_are_unique() -> None:
    names = [context.name for context in ENABLED_CONTEXTS]
    assert len(names) == len(set(names))


def test_a_service_declared_by_two_contexts_is_refused() -> None:
    with pytest.raises(ValueError, match=r"more than one context: ledgerd\.v1\.LedgerService"):
        services_of((LEDGER, LEDGER))
