"""The ledger's rule tables: every request field covered, each rule true to its check."""

import re
from collections.abc import Iterator

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import given
from hypothesis import strategies as st

from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.metadata import check_metadata
from ledgerd.kernel.rules import IntegerRule, ListRule, MapRule, TextRule
from ledgerd.ledger.entrypoints.grpc.api_rules import FIELD_RULES, MESSAGE_RULES, UNRULED
from ledgerd.ledger.entrypoints.grpc.mapping import flags, metadata_filter
from ledgerd.v1 import ledger_pb2

SERVICE = ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"]
_INTEGERS = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
}


def _request_fields() -> Iterator[FieldDescriptor]:
    seen: set[str] = set()

    def visit(message: Descriptor) -> Iterator[FieldDescriptor]:
        if message.full_name in seen or message.file.package != "ledgerd.v1":
            return
        seen.add(message.full_name)
        for field in message.fields:
            yield field
            if field.message_type is not None and not field.message_type.GetOptions().map_entry:
                yield from visit(field.message_type)

    for method in SERVICE.methods:
        yield from visit(method.input_type)


def test_every_request_field_is_ruled_or_named_as_unruled() -> None:
    names = {field.full_name for field in _request_fields()}

    assert names - FIELD_RULES.keys() - UNRULED == set()
    assert FIELD_RULES.keys() - names == set()
    assert UNRULED - names == set()
    assert FIELD_RULES.keys() & UNRULED == set()


def test_each_rule_fits_its_field() -> None:
    for field in _request_fields():
        rule = FIELD_RULES.get(field.full_name)
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        if isinstance(rule, MapRule):
            assert is_map, field.full_name
        elif isinstance(rule, ListRule):
            assert field.is_repeated, field.full_name
            assert not is_map, field.full_name
        elif isinstance(rule, TextRule):
            assert field.type == FieldDescriptor.TYPE_STRING, field.full_name
            assert not field.is_repeated, field.full_name
        elif isinstance(rule, IntegerRule):
            assert field.type in _INTEGERS, field.full_name
            assert not field.is_repeated, field.full_name


_FILTER = FIELD_RULES["ledgerd.v1.ListAccountsRequest.metadata"]


def _filter_accepts(pair: str) -> bool:
    try:
        check_metadata(metadata_filter([pair]))
    except LedgerdError:
        return False
    return True


@given(pair=st.text(alphabet="ab09_.:-= \x00\u00e9", max_size=80) | st.text(max_size=80))
def test_the_metadata_filter_rule_admits_what_the_filter_accepts(pair: str) -> None:
    assert isinstance(_FILTER, ListRule)
    assert isinstance(_FILTER.items, TextRule)
    assert _FILTER.items.pattern is not None
    assert bool(re.fullmatch(_FILTER.items.pattern, pair)) == _filter_accepts(pair)


def test_a_metadata_filter_names_each_key_once() -> None:
    assert metadata_filter(["a=1", "b=1"]) == {"a": "1", "b": "1"}
    with pytest.raises(LedgerdError) as raised:
        metadata_filter(["a=1", "a=2"])
    assert raised.value.details == {"field": "metadata"}


@given(
    limit_debits=st.booleans(),
    limit_credits=st.booleans(),
    overdraft=st.sampled_from([0, 1, 2**63 - 1]),
)
def test_the_account_flag_rules_are_what_account_flags_check(
    *, limit_debits: bool, limit_credits: bool, overdraft: int
) -> None:
    message = ledger_pb2.AccountFlags(
        debits_must_not_exceed_credits=limit_debits,
        credits_must_not_exceed_debits=limit_credits,
        overdraft_limit=overdraft,
    )
    values = {field.name: value for field, value in message.ListFields()}
    rules = MESSAGE_RULES["ledgerd.v1.AccountFlags"]
    try:
        flags(message)
    except LedgerdError:
        accepted = False
    else:
        accepted = True

    assert accepted == all(rule.holds(values) for rule in rules)
