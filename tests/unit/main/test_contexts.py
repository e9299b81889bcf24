"""The enabled contexts, as the composition root sees them, fit together."""

from __future__ import annotations

import dataclasses

import pytest

from ledgerd.kernel.rules import ApiExample
from ledgerd.ledger.entrypoints.grpc.api_examples import LEDGER_API_EXAMPLES
from ledgerd.main.api_docs import ledgerd_openapi
from ledgerd.main.bounded_context import merged_examples, services_of
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


def test_the_api_reference_shows_the_examples_the_contexts_services_declare() -> None:
    examples = merged_examples(services_of(ENABLED_CONTEXTS))
    assert examples.items() >= LEDGER_API_EXAMPLES.items()
    document = ledgerd_openapi()
    operation = document["paths"]["/v1/ledgers"]["post"]
    body = operation["requestBody"]["content"]["application/json"]
    assert body["example"] == examples["CreateLedger"].request


def test_an_operation_with_examples_from_two_services_is_refused() -> None:
    (ledger_service,) = LEDGER.services
    other = dataclasses.replace(
        ledger_service,
        examples={"GetLedger": ApiExample(method="GET", path="/v1/other", response={})},
    )
    with pytest.raises(ValueError, match=r"given twice.*LedgerService: GetLedger"):
        merged_examples((ledger_service, other))
