"""HTTP request parts → request messages, by reflection over the real ledger descriptors."""

import pytest

from ledgerd.gateway.http_rules import HttpRoute, http_routes
from ledgerd.gateway.transcoding import build_request, render
from ledgerd.kernel.errors import ErrorCode, LedgerdError
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
