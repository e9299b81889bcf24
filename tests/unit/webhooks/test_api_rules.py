"""The webhooks' rule tables: every request field covered, each rule true to its check."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.rules import TextRule
from ledgerd.ledger.published.events import MESSAGES
from ledgerd.v1 import webhooks_pb2
from ledgerd.webhooks.domain.addresses import AddressPolicy
from ledgerd.webhooks.domain.endpoints import check_url
from ledgerd.webhooks.entrypoints.grpc.api_access import WEBHOOK_API_ACCESS
from ledgerd.webhooks.entrypoints.grpc.api_rules import EVENT_TYPE, FIELD_RULES, UNRULED, URL

SERVICE = webhooks_pb2.DESCRIPTOR.services_by_name["WebhookService"]


def _request_fields() -> Iterator[FieldDescriptor]:
    seen: set[str] = set()

    def visit(message: Descriptor) -> Iterator[FieldDescriptor]:
        if message.full_name in seen or message.file.package != "ledgerd.v1":
            return
        seen.add(message.full_name)
        for field in message.fields:
            yield field
            if field.message_type is not None:
                yield from visit(field.message_type)

    for method in SERVICE.methods:
        yield from visit(method.input_type)


def test_every_request_field_is_ruled_or_named_as_unruled() -> None:
    names = {field.full_name for field in _request_fields()}
    assert names - FIELD_RULES.keys() - UNRULED == set()
    assert FIELD_RULES.keys() - names == set()
    assert UNRULED - names == set()


def _admits(rule: TextRule, value: str) -> bool:
    assert rule.pattern is not None
    return bool(re.fullmatch(rule.pattern, value)) and len(value) <= (rule.max_length or 10**9)


def test_the_event_type_rule_admits_exactly_the_ledgers_event_types() -> None:
    assert all(_admits(EVENT_TYPE, name) for name in MESSAGES)
    assert not _admits(EVENT_TYPE, "ledgerd.v1.TransferPostedX")
    assert not _admits(EVENT_TYPE, "ledgerd.v1.Transfer")


@pytest.mark.parametrize(
    "url",
    [
        "https://partner.example/x",
        "HTTP://a",
        "ftp://partner.example/",
        "https://partner.example/a b",
        "mailto:ops@partner.example",
        "https://p.example/" + "a" * 2100,
    ],
)
def test_a_url_the_rule_refuses_the_check_refuses_too(url: str) -> None:
    try:
        check_url(url, AddressPolicy())
    except LedgerdError:
        accepted = False
    else:
        accepted = True
    # The rule is the check's first part: what it refuses, the server refuses.
    assert accepted <= _admits(URL, url), url


def test_every_rpc_names_its_ledger_and_writes_need_the_write_scope() -> None:
    assert set(WEBHOOK_API_ACCESS) == {method.name for method in SERVICE.methods}
    for name, access in WEBHOOK_API_ACCESS.items():
        assert access.ledger_field == "ledger", name
        reads = name.startswith(("Get", "List"))
        assert access.scope == ("webhooks.read" if reads else "webhooks.write"), name
