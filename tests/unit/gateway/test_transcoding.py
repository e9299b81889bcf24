"""HTTP request parts → request messages, by reflection over the real ledger descriptors."""

import pytest

from ledgerd.gateway import strict_json
from ledgerd.gateway.http_rules import HttpRoute, http_routes
from ledgerd.gateway.transcoding import build_request, render
from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.ledger.entrypoints.grpc.api_rules import LEDGER_API_RULES
from ledgerd.v1 import ledger_pb2 as pb

ROUTES = {
    route.method.name: route
    for route in http_routes(pb.DESCRIPTOR.services_by_name["LedgerService"])
}


def _route(name: str) -> HttpRoute:
    return ROUTES[name]


def test_a_field_body_fills_that_field_and_the_path_fills_the_rest() -> None:
    body = (
        b'{"idempotency_key": "k", "legs": [{"debit_account": "a", "credit_account": "b",'
        b' "amount": "100"}], "pending": {"timeout_seconds": 5}}'
    )
    message = build_request(
        _route("PostTransfer"), path_values={"ledger": "l1"}, query=[], body=body
    )
    assert isinstance(message, pb.PostTransferRequest)
    assert message.ledger == "l1"
    assert message.transfer.legs[0].amount == 100
    assert message.transfer.HasField("pending")
    assert message.transfer.pending.timeout_seconds == 5


def test_64_bit_integers_are_accepted_as_strings_or_numbers() -> None:
    for amount in (b'"9223372036854775807"', b"9223372036854775807"):
        body = b'{"amount": ' + amount + b"}"
        message = build_request(
            _route("CapturePending"),
            path_values={"ledger": "l", "transfer": "t"},
            query=[],
            body=body,
        )
        assert isinstance(message, pb.CapturePendingRequest)
        assert message.amount == 2**63 - 1


def test_query_parameters_fill_scalars_repeated_fields_and_timestamps() -> None:
    message = build_request(
        _route("ListAccounts"),
        path_values={"ledger": "l1"},
        query=[("metadata", "tier=gold"), ("metadata", "eu=1"), ("page_size", "5")],
        body=b"",
    )
    assert isinstance(message, pb.ListAccountsRequest)
    assert list(message.metadata) == ["tier=gold", "eu=1"]
    assert message.page_size == 5
    balance = build_request(
        _route("GetBalance"),
        path_values={"ledger": "l1", "account": "a"},
        query=[("as_of", "2024-01-01T00:00:00Z")],
        body=b"",
    )
    assert isinstance(balance, pb.GetBalanceRequest)
    assert balance.as_of.seconds == 1_704_067_200


@pytest.mark.parametrize(
    ("method", "path", "query", "body"),
    [
        pytest.param("PostTransfer", {"ledger": "l"}, [], b"{", id="malformed-json"),
        pytest.param("PostTransfer", {"ledger": "l"}, [], b"[]", id="not-an-object"),
        pytest.param("PostTransfer", {"ledger": "l"}, [], b'{"nope": 1}', id="unknown-field"),
        pytest.param(
            "PostTransfer", {"ledger": "l"}, [], b'{"idempotency_key": 7}', id="wrong-type"
        ),
        pytest.param(
            "PostTransfer",
            {"ledger": "l"},
            [],
            b'{"legs": [{"amount": "abc"}]}',
            id="not-a-number",
        ),
        pytest.param("GetLedger", {"ledger": "l"}, [], b'{"x": 1}', id="body-on-get"),
        pytest.param("ListAccounts", {"ledger": "l"}, [("colour", "red")], b"", id="unknown-query"),
        pytest.param("ListAccounts", {"ledger": "l"}, [("page_size", "x")], b"", id="bad-int"),
        pytest.param(
            "ListAccounts",
            {"ledger": "l"},
            [("page_size", "1"), ("page_size", "2")],
            b"",
            id="scalar-twice",
        ),
        pytest.param(
            "CreateAccount", {"ledger": "l"}, [], b'{"ledger": "other"}', id="path-field-in-body"
        ),
        pytest.param(
            "GetBalance",
            {"ledger": "l", "account": "a"},
            [("as_of", "yesterday")],
            b"",
            id="bad-timestamp",
        ),
    ],
)
def test_malformed_requests_are_validation_errors(
    method: str, path: dict[str, str], query: list[tuple[str, str]], body: bytes
) -> None:
    with pytest.raises(LedgerdError) as raised:
        build_request(_route(method), path_values=path, query=query, body=body)
    assert raised.value.code is ErrorCode.VALIDATION_FAILED


def test_responses_use_proto_names_string_int64_and_every_field() -> None:
    rendered = render(pb.Balance(posted_debits=5))
    assert rendered == {
        "posted_debits": "5",
        "posted_credits": "0",
        "pending_debits": "0",
        "pending_credits": "0",
        "available": "0",
    }
    assert render(pb.Account(status=pb.Account.FROZEN))["status"] == "FROZEN"


# --- strict JSON: what protobuf's parser lets through but the API does not --------------------


def _refusal(method: str, body: bytes, **path: str) -> LedgerdError:
    route = _route(method)
    values = path or {variable.name: "x" for variable in route.template.variables}
    with pytest.raises(LedgerdError) as raised:
        build_request(route, path_values=values, query=[], body=body)
    assert raised.value.code is ErrorCode.VALIDATION_FAILED
    return raised.value


_LEG = b'{"debit_account": "a", "credit_account": "b", "amount": 1}'


@pytest.mark.parametrize(
    ("method", "body", "key"),
    [
        pytest.param("CreateLedger", b'{"id": "a", "id": "b"}', "id", id="top-level"),
        pytest.param(
            "PostTransfer",
            b'{"idempotency_key": "k", "legs": [{"debit_account": "a", "credit_account": "b",'
            b' "amount": 1, "amount": 2}]}',
            "amount",
            id="in-a-list-item",
        ),
        pytest.param(
            "CreateLedger", b'{"id": "a", "metadata": {"t": "1", "t": "2"}}', "t", id="in-a-map"
        ),
        pytest.param("CreateLedger", b'{"id": "a", "name": "x", "id": "a"}', "id", id="same-value"),
    ],
)
def test_a_key_given_twice_in_one_object_is_refused(method: str, body: bytes, key: str) -> None:
    # json.loads keeps the last value; a client (or a proxy in between) may have meant the first.
    error = _refusal(method, body)
    assert f"'{key}'" in error.message
    assert error.details == {"field": "body"}


@pytest.mark.parametrize(
    ("method", "body", "field"),
    [
        pytest.param("PostTransfer", b'{"pending": null}', "pending", id="message"),
        pytest.param("CreateLedger", b'{"id": "a", "name": null}', "name", id="string"),
        pytest.param("CapturePending", b'{"amount": null}', "amount", id="optional-int64"),
        pytest.param("CreateLedger", b'{"id": "a", "metadata": null}', "metadata", id="map"),
        pytest.param("PostTransfer", b'{"legs": null}', "legs", id="list"),
        pytest.param("PostTransfer", b'{"legs": [null]}', "legs[0]", id="list-item"),
        pytest.param(
            "PostTransfer",
            b'{"legs": [{"debit_account": "a", "credit_account": null}]}',
            "legs[0].credit_account",
            id="nested",
        ),
        pytest.param("CreateLedger", b'{"metadata": {"k": null}}', "metadata.k", id="map-value"),
    ],
)
def test_null_is_refused_wherever_it_appears(method: str, body: bytes, field: str) -> None:
    # protobuf's parser reads null as "unset"; the schema says no field is nullable, and an
    # absent field already means unset, so null is refused rather than quietly dropped.
    error = _refusal(method, body)
    assert error.details == {"field": field}
    assert "null" in error.message


@pytest.mark.parametrize(
    "amount", ['"+5"', '"1_000"', '"\\t5"', '"\\u0663"', '"007"', '"-0"', '"5.0"', '"1e3"', '""']
)
def test_integers_as_strings_are_plain_decimals(amount: str) -> None:
    # Python's int() would read all of these (protobuf's parser uses it).
    body = b'{"legs": [{"debit_account": "a", "credit_account": "b", "amount": %s}]}' % (
        amount.encode()
    )
    error = _refusal("PostTransfer", body)
    assert error.details == {"field": "legs[0].amount"}


@pytest.mark.parametrize("query", [("page_size", "+5"), ("page_size", "05")])
def test_integers_in_the_url_are_plain_decimals_too(query: tuple[str, str]) -> None:
    with pytest.raises(LedgerdError) as raised:
        build_request(_route("ListAccounts"), path_values={"ledger": "l"}, query=[query], body=b"")
    assert raised.value.details == {"field": "page_size"}


@pytest.mark.parametrize(
    "instant",
    [
        "2000-1-01T00:00:00Z",  # a one-digit month
        "2000-01-01T00:00:00.Z",  # a fraction without digits
        "\uff12\uff10\uff10\uff10-01-01T00:00:00Z",  # full-width digits
        "2000-01-01T00:00:00+24:00",  # an offset of a whole day
        "2000-01-01T00:00:00-00:60",
    ],
)
def test_timestamps_are_rfc_3339_as_written(instant: str) -> None:
    with pytest.raises(LedgerdError) as raised:
        build_request(
            _route("GetBalance"),
            path_values={"ledger": "l", "account": "a"},
            query=[("as_of", instant)],
            body=b"",
        )
    assert raised.value.details == {"field": "as_of"}


@pytest.mark.parametrize(
    "instant",
    [
        "2000-01-01T00:00:00Z",
        "2000-01-01T00:00:00.123456789+05:30",
        "2000-01-01T00:00:00-00:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999999Z",
    ],
)
def test_rfc_3339_timestamps_are_accepted(instant: str) -> None:
    message = build_request(
        _route("GetBalance"),
        path_values={"ledger": "l", "account": "a"},
        query=[("as_of", instant)],
        body=b"",
    )
    assert isinstance(message, pb.GetBalanceRequest)
    assert message.HasField("as_of")


def test_plain_integers_still_arrive_as_strings_or_numbers() -> None:
    for amount in (b'"0"', b'"-12"', b"12", b"12.0", b'"9223372036854775807"'):
        body = b'{"legs": [{"debit_account": "a", "credit_account": "b", "amount": ' + amount
        message = build_request(
            _route("PostTransfer"), path_values={"ledger": "l"}, query=[], body=body + b"}]}"
        )
        assert isinstance(message, pb.PostTransferRequest)


# --- what a refusal says: the field as written, in snake_case, and what is accepted ------------
_LEG = b'{"debit_account": "a", "credit_account": "b", "amount": 1'


@pytest.mark.parametrize(
    ("method", "body", "field", "says"),
    [
        pytest.param(
            "PostTransfer",
            b'{"legs": [' + _LEG + b', "memo": "x"}]}',
            "legs[0].memo",
            "is not a field; the fields here are debit_account, credit_account, amount, asset",
            id="unknown-in-a-leg",
        ),
        pytest.param(
            "PostTransfer",
            b'{"memo": "x"}',
            "memo",
            "is not a field; the fields here are idempotency_key, legs, pending, metadata",
            id="unknown-in-the-body-field",
        ),
        pytest.param(
            # The URL sets `ledger`: the body's fields are the others.
            "PostTransfers",
            b'{"transfers": [], "memo": "x"}',
            "memo",
            "is not a field; the fields here are transfers, atomic",
            id="unknown-in-a-whole-body",
        ),
        pytest.param(
            "PostTransfer",
            b'{"legs": [' + _LEG + b'}], "pending": 5}',
            "pending",
            "must be an object; the fields here are timeout_seconds",
            id="object-expected",
        ),
        pytest.param("PostTransfer", b'{"legs": {}}', "legs", "must be a list", id="list-expected"),
        pytest.param(
            "CreateLedger",
            b'{"metadata": []}',
            "metadata",
            "must be an object of names to values",
            id="map-expected",
        ),
        pytest.param("CreateLedger", b'{"name": 5}', "name", "must be a string", id="string"),
        pytest.param(
            "PostTransfers",
            b'{"atomic": 1}',
            "atomic",
            "must be true or false (without quotes)",
            id="bool",
        ),
        pytest.param(
            "PostTransfer",
            b'{"legs": [{"amount": true}]}',
            "legs[0].amount",
            'must be an integer in decimal digits, like 42 or "42"',
            id="integer-not-bool",
        ),
        pytest.param(
            "PostTransfer",
            b'{"legs": [{"amount": 2.5}]}',
            "legs[0].amount",
            'must be an integer in decimal digits, like 42 or "42"',
            id="integer-not-fraction",
        ),
        pytest.param(
            "PostTransfer",
            b'{"legs": [{"amount": -9223372036854775809}]}',
            "legs[0].amount",
            "must be an integer from -9223372036854775808 to 9223372036854775807",
            id="integer-range",
        ),
    ],
)
def test_a_refusal_names_the_field_and_what_it_takes(
    method: str, body: bytes, field: str, says: str
) -> None:
    error = _refusal(method, body)
    assert error.details == {"field": field}
    assert error.message == f"{field}: {says}"


def test_an_enum_value_is_refused_with_the_names_it_may_have() -> None:
    with pytest.raises(LedgerdError) as raised:
        strict_json.check_values(pb.Transfer.DESCRIPTOR, {"kind": "PENDING"})
    assert raised.value.details == {"field": "kind"}
    assert "must be one of KIND_UNSPECIFIED, POSTING, HOLD," in raised.value.message
    strict_json.check_values(pb.Transfer.DESCRIPTOR, {"kind": "HOLD"})
    strict_json.check_values(pb.Transfer.DESCRIPTOR, {"kind": 2})


def test_an_integer_past_its_type_is_refused_in_its_rules_words() -> None:
    route = _route("ListTransfers")
    query = [("page_size", str(2**31))]
    with pytest.raises(LedgerdError) as bare:
        build_request(route, path_values={"ledger": "l"}, query=query, body=b"")
    with pytest.raises(LedgerdError) as ruled:
        build_request(
            route, path_values={"ledger": "l"}, query=query, body=b"", rules=LEDGER_API_RULES
        )
    assert bare.value.message == "page_size: must be an integer from -2147483648 to 2147483647"
    assert ruled.value.message == "page_size: must be between 1 and 1000"
