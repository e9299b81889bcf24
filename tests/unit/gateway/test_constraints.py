"""Rules as JSON Schema: where a field sits in a proto3 request changes how a rule is said."""

import jsonschema_rs
import pytest
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import given
from hypothesis import strategies as st

from ledgerd.gateway.constraints import constrained, integer_schema, message_rule_schema
from ledgerd.gateway.json_schema import JsonObject
from ledgerd.kernel.rules import AtMostOneSet, IntegerRule, ListRule, MapRule, SetOnlyWith, TextRule
from ledgerd.v1 import ledger_pb2 as pb

PAGE_SIZE = pb.ListAccountsRequest.DESCRIPTOR.fields_by_name["page_size"]  # optional, no presence
LEG_AMOUNT = pb.Leg.DESCRIPTOR.fields_by_name["amount"]  # required
CAPTURE_AMOUNT = pb.CapturePendingRequest.DESCRIPTOR.fields_by_name["amount"]  # proto3 optional
KEY = pb.VoidPendingRequest.DESCRIPTOR.fields_by_name["idempotency_key"]  # optional string
LEDGER = pb.GetLedgerRequest.DESCRIPTOR.fields_by_name["ledger"]  # required string
FILTER = pb.ListAccountsRequest.DESCRIPTOR.fields_by_name["metadata"]  # repeated string
METADATA = pb.CreateLedgerRequest.DESCRIPTOR.fields_by_name["metadata"]  # map
INT32 = integer_schema(-(2**31), 2**31 - 1, "int32", in_url=False)
INT64 = integer_schema(-(2**63), 2**63 - 1, "int64", in_url=False)


def _valid(schema: JsonObject, value: object) -> bool:
    return bool(jsonschema_rs.validator_for(schema).is_valid(value))


def _admitted(field: FieldDescriptor, rule: IntegerRule, values: list[object]) -> list[object]:
    schema = constrained(
        INT64 if field.type == field.TYPE_INT64 else INT32, field, rule, in_url=False
    )
    return [value for value in values if _valid(schema, value)]


CANDIDATES: list[object] = [-1, 0, "0", 1, "1", 5, "5", 10, "10", 11, "11"]


@pytest.mark.parametrize(
    ("field", "rule", "admitted"),
    [
        # Required: the rule alone.
        (LEG_AMOUNT, IntegerRule(1, 10), [1, "1", 5, "5", 10, "10"]),
        # proto3 `optional`: 0 is a value the client sent, so the rule alone.
        (CAPTURE_AMOUNT, IntegerRule(1, 10), [1, "1", 5, "5", 10, "10"]),
        # Neither: 0 means unset, beside the rule (one range when it touches 0) ...
        (PAGE_SIZE, IntegerRule(1, 10), [0, "0", 1, "1", 5, "5", 10, "10"]),
        # ... or as an alternative when it does not.
        (PAGE_SIZE, IntegerRule(5, 10), [0, "0", 5, "5", 10, "10"]),
    ],
)
def test_an_integer_rule_and_the_zero_value(
    field: FieldDescriptor, rule: IntegerRule, admitted: list[object]
) -> None:
    assert _admitted(field, rule, CANDIDATES) == admitted


def test_the_field_type_bounds_a_wider_rule() -> None:
    schema = constrained(INT32, PAGE_SIZE, IntegerRule(1, 2**40), in_url=False)

    assert schema["maximum"] == 2**31 - 1
    assert not _valid(schema, str(2**31))


def test_in_a_url_an_integer_is_bounded_as_a_number() -> None:
    url_int32 = integer_schema(-(2**31), 2**31 - 1, "int32", in_url=True)

    schema = constrained(url_int32, PAGE_SIZE, IntegerRule(1, 1000), in_url=True)

    assert schema == {"type": "integer", "format": "int32", "minimum": 0, "maximum": 1000}


def test_a_text_rule_admits_the_empty_string_only_where_it_means_unset() -> None:
    rule = TextRule(pattern="^[a-z]{1,3}$", max_length=3, excluded=frozenset({"no"}))
    optional = constrained({"type": "string"}, KEY, rule, in_url=False)
    required = constrained({"type": "string"}, LEDGER, rule, in_url=False)

    assert [v for v in ["", "ab", "no", "abcd", "A"] if _valid(optional, v)] == ["", "ab"]
    assert [v for v in ["", "ab", "no", "abcd", "A"] if _valid(required, v)] == ["ab"]


def test_a_list_rule_bounds_the_list_and_its_items() -> None:
    rule = ListRule(max_items=2, items=TextRule(pattern="^[a-z]+=[a-z]*$"))
    schema = constrained({"type": "array", "items": {"type": "string"}}, FILTER, rule, in_url=True)

    assert _valid(schema, ["a=b", "c="])
    assert not _valid(schema, ["a=b", "c=", "d=e"])
    assert not _valid(schema, ["=b"])


def test_a_map_rule_bounds_entries_keys_and_values() -> None:
    rule = MapRule(1, keys=TextRule(pattern="^[a-z]+$"), values=TextRule(max_length=2))
    schema = constrained(
        {"type": "object", "additionalProperties": {"type": "string"}}, METADATA, rule, in_url=False
    )

    assert _valid(schema, {"ab": "xy"})
    assert not _valid(schema, {"ab": "xyz"})
    assert not _valid(schema, {"A": "x"})
    assert not _valid(schema, {"a": "x", "b": "y"})


FLAGS = pb.AccountFlags.DESCRIPTOR
LIMITS = ("debits_must_not_exceed_credits", "credits_must_not_exceed_debits")


@given(
    limit_debits=st.sampled_from([None, True, False]),
    limit_credits=st.sampled_from([None, True, False]),
    overdraft=st.sampled_from([None, 0, "0", 5, "5", 0.0]),
)
def test_message_rules_say_what_they_hold(
    limit_debits: bool | None, limit_credits: bool | None, overdraft: float | str | None
) -> None:
    # None: the field is left out. A parsed message reads "0" as the number 0, i.e. not set.
    sent = zip((*LIMITS, "overdraft_limit"), (limit_debits, limit_credits, overdraft), strict=True)
    body = {name: value for name, value in sent if value is not None}
    values = {**body, "overdraft_limit": int(overdraft or 0)}

    for rule in (AtMostOneSet(LIMITS), SetOnlyWith("overdraft_limit", LIMITS)):
        schema = message_rule_schema(FLAGS, rule)
        assert _valid(schema, body) == rule.holds(values), (rule, body)
