"""The component schemas say exactly what protobuf's own proto3-JSON code prints and parses.

Real messages are printed with json_format the way the gateway prints them and must validate
against the output schemas; request bodies that validate against the input schemas must parse.
"""

from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from ledgerd.gateway.json_forms import decimal_range_pattern
from ledgerd.gateway.json_schema import JsonObject
from ledgerd.v1 import ledger_pb2
from tests.unit.gateway.json_schemas import component, errors, validator

NOW = Timestamp(seconds=1_767_225_600, nanos=123_000_000)
BIG = 2**63 - 1


def _printed(message: Message) -> dict[str, Any]:
    """As the gateway prints responses: proto field names, every no-presence field present."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _schemas(document: JsonObject) -> JsonObject:
    schemas: JsonObject = document["components"]["schemas"]
    return schemas


def _transfer() -> ledger_pb2.Transfer:
    return ledger_pb2.Transfer(
        id="t1",
        ledger="main",
        idempotency_key="k1",
        legs=[ledger_pb2.Leg(debit_account="a", credit_account="b", amount=BIG, asset="USD/2")],
        pending=ledger_pb2.PendingOptions(timeout_seconds=60),
        kind=ledger_pb2.Transfer.HOLD,
        status=ledger_pb2.Transfer.PENDING,
        metadata={"order": "42"},
        created_at=NOW,
        expires_at=NOW,
        sequence=7,
        hash="ab",
        prev_hash="cd",
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Ledger", ledger_pb2.Ledger(id="main", name="Main", created_at=NOW)),
        ("Ledger", ledger_pb2.Ledger()),  # every default printed
        (
            "Account",
            ledger_pb2.Account(
                id="alice",
                ledger="main",
                asset="USD/2",
                flags=ledger_pb2.AccountFlags(debits_must_not_exceed_credits=True),
                status=ledger_pb2.Account.FROZEN,
                balance=ledger_pb2.Balance(posted_debits=-(2**63), available=-5),
                created_at=NOW,
                version=3,
            ),
        ),
        ("Transfer", _transfer()),
        (
            "PostTransfersResponse",
            ledger_pb2.PostTransfersResponse(
                results=[
                    ledger_pb2.TransferResult(transfer=_transfer(), replayed=True),
                    ledger_pb2.TransferResult(
                        error=ledger_pb2.Error(code="INSUFFICIENT_FUNDS", message="no")
                    ),
                ]
            ),
        ),
        (
            "Entry",
            ledger_pb2.Entry(
                account="a",
                sequence=1,
                side=ledger_pb2.Entry.CREDIT,
                layer=ledger_pb2.Entry.PENDING,
                amount=-100,
                balance_after=ledger_pb2.Balance(pending_credits=100),
                created_at=NOW,
            ),
        ),
        ("AccountBalance", ledger_pb2.AccountBalance(account="a", as_of=NOW)),
        (
            "ListAccountsResponse",
            ledger_pb2.ListAccountsResponse(accounts=[ledger_pb2.Account(id="a")]),
        ),
    ],
)
def test_printed_responses_validate_against_output_schemas(
    ledger_document: JsonObject, name: str, message: Message
) -> None:
    assert errors(component(ledger_document, name), _printed(message)) == []


def test_output_schemas_are_precise_not_just_permissive(ledger_document: JsonObject) -> None:
    balance = component(ledger_document, "Balance")
    printed = _printed(ledger_pb2.Balance(posted_debits=5))

    assert printed["posted_debits"] == "5"
    assert errors(balance, {**printed, "posted_debits": 5})  # int64 is printed as a string
    assert errors(balance, {**printed, "posted_debits": "5.0"})
    assert errors(balance, {key: value for key, value in printed.items() if key != "available"})

    result = component(ledger_document, "TransferResult")
    both = {"transfer": _printed(_transfer()), "error": {"code": "X"}, "replayed": False}
    assert errors(result, both)  # a oneof holds at most one member

    account = component(ledger_document, "Account")
    assert errors(account, {**_printed(ledger_pb2.Account()), "status": "DORMANT"})
    # Responses stay open, so a field added to the .proto later breaks no validating client.
    assert errors(account, {**_printed(ledger_pb2.Account()), "added_later": 1}) == []


def test_int64_has_a_string_output_and_a_string_or_integer_input(
    ledger_document: JsonObject,
) -> None:
    schemas = _schemas(ledger_document)
    description = schemas["Leg"]["properties"]["amount"]["description"]

    assert schemas["Leg"]["properties"]["amount"] == {
        "description": description,
        "type": "string",
        "format": "int64",
        "pattern": "^-?[0-9]{1,19}$",
    }
    # An amount is 1 to 2^63-1 (check_amount's rule): bounds for numbers, digits for strings.
    assert schemas["Leg-Input"]["properties"]["amount"] == {
        "description": description,
        "type": ["string", "integer"],
        "format": "int64",
        "pattern": decimal_range_pattern(1, BIG),
        "minimum": 1,
        "maximum": BIG,
    }
    leg = component(ledger_document, "Leg-Input")
    base = {"debit_account": "a", "credit_account": "b"}
    for accepted in ["9223372036854775807", BIG, 1, "1", 12.0]:
        assert errors(leg, {**base, "amount": accepted}) == [], accepted
    refused: list[object] = [0, "0", -5, "-5", 2**63, "9223372036854775808", "1.5", ""]
    for amount in [*refused, "12a", "+5", "05", " 5", 1.5, True, None]:
        assert errors(leg, {**base, "amount": amount}), amount


def test_required_fields_come_from_field_behavior(ledger_document: JsonObject) -> None:
    schemas = _schemas(ledger_document)

    assert schemas["TransferInput"]["required"] == ["idempotency_key", "legs"]
    assert schemas["Leg-Input"]["required"] == ["debit_account", "credit_account", "amount"]
    # proto3 cannot tell an empty string or list from an absent one: required means non-empty.
    legs = schemas["TransferInput"]["properties"]["legs"]
    assert legs["minItems"] == 1
    assert schemas["TransferInput"]["properties"]["idempotency_key"]["minLength"] == 1
    assert "minLength" not in schemas["Leg-Input"]["properties"]["asset"]  # not required


def test_input_objects_are_closed_and_output_objects_open(ledger_document: JsonObject) -> None:
    # TransferInput travels only in requests, so its schema has the proto's name (no -Input).
    for name, schema in _schemas(ledger_document).items():
        if schema.get("type") != "object" or name == "Problem":
            continue
        if name.endswith("-Input") or name == "TransferInput":
            assert schema["additionalProperties"] is False, name
        else:
            assert "additionalProperties" not in schema, name


def test_enums_are_names_and_requests_need_not_name_the_unset_value(
    library_document: JsonObject, ledger_document: JsonObject
) -> None:
    schemas = _schemas(library_document)

    assert schemas["Book.Format"]["enum"] == ["FORMAT_UNSPECIFIED", "PAPER", "EBOOK"]
    assert schemas["Book.Format-Input"]["enum"] == ["PAPER", "EBOOK"]
    assert schemas["Book.Format"]["description"] == "- `PAPER`: Printed on paper."
    assert _schemas(ledger_document)["Transfer.Kind"]["enum"] == [
        "KIND_UNSPECIFIED",
        "POSTING",
        "HOLD",
        "CAPTURE",
        "VOID",
        "EXPIRY",
        "REVERSAL",
    ]


def test_the_rest_of_the_mapping(library_document: JsonObject) -> None:
    book = _schemas(library_document)["Book"]["properties"]
    book_input = _schemas(library_document)["Book-Input"]["properties"]

    assert book["pages"] == {"type": "string", "format": "uint64", "pattern": "^[0-9]{1,20}$"}
    assert book["published"] == {"type": "string", "format": "date-time"}
    assert book["read_time"] == {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"}
    assert book["auction_cents"] == {
        "type": "string",
        "format": "int64",
        "pattern": "^-?[0-9]{1,19}$",
    }
    assert book["rating"] == {
        "type": ["number", "string"],
        "format": "double",
        "pattern": "^(NaN|-?Infinity)$",
    }
    assert book["cover"] == {"type": "string", "contentEncoding": "base64"}
    assert book["notes_by_page"] == {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "propertyNames": {"pattern": "^-?[0-9]+$"},
    }
    assert book["shelves_by_room"]["additionalProperties"] == {"$ref": "#/components/schemas/Shelf"}
    assert book["sequel"] == {"$ref": "#/components/schemas/Book"}  # recursion by reference
    assert book["authors"]["items"] == {"type": "string"}
    # field_behavior: OUTPUT_ONLY fields are not accepted, INPUT_ONLY ones never printed.
    assert "created_at" in book
    assert "created_at" not in book_input
    assert "librarian_note" in book_input
    assert "librarian_note" not in book
    # A real oneof constrains its members; proto3 `optional` (a oneof of one) does not.
    (price,) = _schemas(library_document)["Book"]["allOf"]
    assert (
        price["description"]
        == "oneof `price`: at most one of `cents`, `free_because`, `auction_cents`"
    )
    assert len(price["not"]["anyOf"]) == 3


def test_output_required_tracks_presence(library_document: JsonObject) -> None:
    # Printed with always_print_fields_with_no_presence: only fields with presence may be absent.
    required = _schemas(library_document)["Book"]["required"]

    assert "title" in required
    assert "authors" in required  # repeated: printed as []
    assert "notes_by_page" in required  # map: printed as {}
    for optional in ["sequel", "published", "rating", "cents", "auction_cents"]:
        assert optional not in required


@pytest.mark.parametrize(
    ("operation", "body", "request_type", "path"),
    [
        (
            "CreateLedger",
            {"id": "main", "metadata": {"a": "b"}},
            ledger_pb2.CreateLedgerRequest,
            {},
        ),
        (
            "PostTransfers",
            {
                "transfers": [
                    {
                        "idempotency_key": "k",
                        "legs": [{"debit_account": "a", "credit_account": "b", "amount": "10"}],
                        "pending": {"timeout_seconds": 30},
                    },
                    {
                        "idempotency_key": "k2",
                        "legs": [{"debit_account": "a", "credit_account": "b", "amount": 10}],
                    },
                ],
                "atomic": True,
            },
            ledger_pb2.PostTransfersRequest,
            {"ledger": "main"},
        ),
        (
            "CapturePending",
            {"amount": "5", "metadata": {"why": "partial"}},
            ledger_pb2.CapturePendingRequest,
            {"ledger": "main", "transfer": "t1"},
        ),
        (
            "CreateAccount",
            {
                "id": "a",
                "asset": "USD/2",
                "flags": {"overdraft_limit": 100, "debits_must_not_exceed_credits": True},
            },
            ledger_pb2.CreateAccountRequest,
            {"ledger": "main"},
        ),
    ],
)
def test_valid_request_bodies_parse_as_the_request(
    ledger_document: JsonObject,
    operation: str,
    body: dict[str, Any],
    request_type: type[Message],
    path: dict[str, str],
) -> None:
    schema = _body_schema(ledger_document, operation)

    assert errors(validator(ledger_document, schema), body) == []
    parsed = json_format.ParseDict({**body, **path}, request_type())
    assert parsed.ByteSize() > 0


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("CreateLedger", {"name": "no id"}),
        ("CreateLedger", {"id": ""}),
        ("CreateLedger", {"id": "x", "unknown": 1}),
        ("CreateLedger", {"id": "x", "ledger": "only in the path elsewhere"}),
        ("CreateAccount", {"id": "a", "asset": "USD/2", "ledger": "in the path"}),
        ("PostTransfers", {"transfers": []}),
        ("PostTransfers", {"transfers": [{"idempotency_key": "k", "legs": [{"amount": 1}]}]}),
        ("CapturePending", {"amount": 1.5}),
    ],
)
def test_invalid_request_bodies_fail_the_schema(
    ledger_document: JsonObject, operation: str, body: dict[str, Any]
) -> None:
    assert errors(validator(ledger_document, _body_schema(ledger_document, operation)), body)


def _body_schema(document: JsonObject, operation_id: str) -> JsonObject:
    for item in document["paths"].values():
        for operation in item.values():
            if operation["operationId"] == operation_id:
                schema: JsonObject = operation["requestBody"]["content"]["application/json"][
                    "schema"
                ]
                return schema
    raise AssertionError(operation_id)


def test_a_schema_has_the_protos_name_unless_it_travels_both_ways(
    ledger_document: JsonObject,
) -> None:
    schemas = _schemas(ledger_document)
    assert "TransferInput" in schemas
    assert "TransferInput-Input" not in schemas
    for name in schemas:
        if name.endswith("-Input"):
            assert name.removesuffix("-Input") in schemas, name  # e.g. Leg and Leg-Input
