import pytest
from google.protobuf.descriptor import ServiceDescriptor

from ledgerd.gateway.http_rules import WHOLE_BODY, HttpRoute, HttpRuleError, http_routes
from tests.unit.gateway.services import service_with

# Every RPC of ledger.proto with its one binding: (RPC, verb, path template, body).
LEDGER_BINDINGS = [
    ("CreateLedger", "POST", "/v1/ledgers", "*"),
    ("ListLedgers", "GET", "/v1/ledgers", None),
    ("GetLedger", "GET", "/v1/ledgers/{ledger}", None),
    ("CreateAccount", "POST", "/v1/ledgers/{ledger}/accounts", "*"),
    ("GetAccount", "GET", "/v1/ledgers/{ledger}/accounts/{account}", None),
    ("ListAccounts", "GET", "/v1/ledgers/{ledger}/accounts", None),
    (
        "UpdateAccountMetadata",
        "POST",
        "/v1/ledgers/{ledger}/accounts/{account}:updateMetadata",
        "*",
    ),
    ("FreezeAccount", "POST", "/v1/ledgers/{ledger}/accounts/{account}:freeze", "*"),
    ("UnfreezeAccount", "POST", "/v1/ledgers/{ledger}/accounts/{account}:unfreeze", "*"),
    ("CloseAccount", "POST", "/v1/ledgers/{ledger}/accounts/{account}:close", "*"),
    ("PostTransfer", "POST", "/v1/ledgers/{ledger}/transfers", "transfer"),
    ("PostTransfers", "POST", "/v1/ledgers/{ledger}/transfers:batch", "*"),
    ("GetTransfer", "GET", "/v1/ledgers/{ledger}/transfers/{transfer}", None),
    ("GetTransferByKey", "GET", "/v1/ledgers/{ledger}/transfers:lookup", None),
    ("ListTransfers", "GET", "/v1/ledgers/{ledger}/transfers", None),
    ("CapturePending", "POST", "/v1/ledgers/{ledger}/transfers/{transfer}:capture", "*"),
    ("VoidPending", "POST", "/v1/ledgers/{ledger}/transfers/{transfer}:void", "*"),
    ("ReverseTransfer", "POST", "/v1/ledgers/{ledger}/transfers/{transfer}:reverse", "*"),
    ("GetBalance", "GET", "/v1/ledgers/{ledger}/accounts/{account}/balance", None),
    ("BatchGetBalances", "GET", "/v1/ledgers/{ledger}/balances:batchGet", None),
    ("ListEntries", "GET", "/v1/ledgers/{ledger}/accounts/{account}/entries", None),
    ("ExportStatement", "GET", "/v1/ledgers/{ledger}/accounts/{account}/statement:export", None),
]


def _by_id(routes: tuple[HttpRoute, ...]) -> dict[str, HttpRoute]:
    return {route.operation_id: route for route in routes}


def test_every_ledger_rpc_has_exactly_its_annotated_binding(
    ledger_service: ServiceDescriptor,
) -> None:
    routes = http_routes(ledger_service)

    assert [
        (route.method.name, route.http_method, route.template.text, route.body) for route in routes
    ] == LEDGER_BINDINGS
    assert {route.method.name for route in routes} == {
        method.name for method in ledger_service.methods
    }


def test_routes_carry_the_rpc_they_call(ledger_service: ServiceDescriptor) -> None:
    routes = _by_id(http_routes(ledger_service))
    capture = routes["CapturePending"]

    assert capture.request.full_name == "ledgerd.v1.CapturePendingRequest"
    assert capture.response.full_name == "ledgerd.v1.Transfer"
    assert capture.grpc_path == "/ledgerd.v1.LedgerService/CapturePending"
    assert [path.name for path in capture.path_fields] == ["ledger", "transfer"]
    assert capture.query_parameters == ()  # body "*" leaves nothing to the query
    assert not capture.server_streaming
    assert routes["ExportStatement"].server_streaming
    assert routes["PostTransfer"].body_field is not None
    assert routes["PostTransfer"].body_field.full_name == "ledgerd.v1.PostTransferRequest.transfer"
    assert routes["CreateLedger"].body == WHOLE_BODY
    assert routes["CreateLedger"].body_field is None


def test_query_parameters_are_the_fields_neither_path_nor_body_carries(
    ledger_service: ServiceDescriptor,
) -> None:
    routes = _by_id(http_routes(ledger_service))

    def names(operation_id: str) -> list[str]:
        return [path.name for path in routes[operation_id].query_parameters]

    assert names("ListLedgers") == ["page_size", "page_token"]
    assert names("ListAccounts") == ["page_size", "page_token", "metadata"]
    # Timestamps are written as strings, so they are parameters like scalars.
    assert names("ListTransfers") == [
        "account",
        "start_time",
        "end_time",
        "page_size",
        "page_token",
        "kind",
        "status",
    ]
    assert names("GetBalance") == ["as_of"]
    assert names("GetLedger") == []
    assert names("PostTransfer") == []  # the only other field is in the path


def test_additional_bindings_become_routes_of_their_own(
    library_service: ServiceDescriptor,
) -> None:
    routes = _by_id(http_routes(library_service))
    primary, extra = routes["GetBook"], routes["GetBook_2"]

    assert (primary.binding, extra.binding) == (0, 1)
    assert primary.method is extra.method
    assert primary.template.text == "/v1/{name=shelves/*/books/*}"
    assert extra.template.text == "/v1/shelves/{shelf.id}/volumes/{book_id}"
    assert [path.name for path in extra.path_fields] == ["shelf.id", "book_id"]
    assert [field.name for field in extra.path_fields[0].fields] == ["shelf", "id"]


def test_query_parameters_expand_messages_but_not_maps_repeated_messages_or_cycles(
    library_service: ServiceDescriptor,
) -> None:
    routes = _by_id(http_routes(library_service))

    assert [path.name for path in routes["GetBook"].query_parameters] == [
        "shelf.id",
        "book_id",
        "format",
        "filter.tags",
        # filter.narrower is a Filter inside Filter: expanding it would never end.
        "filter.since",
        # filter.labels is a map and not_on a repeated message: no query form.
        "min_pages",
    ]
    assert [path.name for path in routes["GetBook_2"].query_parameters] == [
        "name",
        "format",
        "filter.tags",
        "filter.since",
        "min_pages",
    ]
    # body "book": the rest of the request is the query.
    assert [path.name for path in routes["UpdateBook"].query_parameters] == ["allow_missing"]


def test_custom_methods_response_body_and_unannotated_rpcs(
    library_service: ServiceDescriptor,
) -> None:
    routes = _by_id(http_routes(library_service))

    assert routes["Ping"].http_method == "HEAD"
    assert routes["PurgeShelf"].http_method == "DELETE"
    count = routes["CountBooks"].response_body
    assert count is not None
    assert count.name == "count"
    assert routes["ReadFile"].server_streaming
    assert "NotOverHttp" not in routes


def test_a_rule_built_by_hand_compiles() -> None:
    (route,) = http_routes(service_with('post: "/v1/{ledger}/{transfer}:capture" body: "*"'))

    assert route.method.full_name == "test.bad.Bad.Call0"
    assert route.template.verb == "capture"


def test_a_path_variable_may_name_a_nested_field() -> None:
    (route,) = http_routes(
        service_with('get: "/v1/{transfer.idempotency_key}"', request="PostTransferRequest")
    )

    assert route.path_fields[0].leaf.full_name == "ledgerd.v1.TransferInput.idempotency_key"


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ('body: "*"', "names no HTTP method"),
        ('get: "/v1/{missing}"', "no field 'missing'"),
        ('get: "/v1/{metadata}"', "cannot be repeated"),
        ('get: "/v1/{ledger.id}"', "ledger is not a message"),
        ('get: "/v1/{ledger"', "expected '}'"),
        ('post: "/v1/x" body: "nope"', "body 'nope' is not a field"),
        ('post: "/v1/{ledger}" body: "ledger"', "also bound by the path"),
        ('get: "/v1/x" response_body: "nope"', "response_body 'nope'"),
        ('custom { path: "/v1/x" }', "custom rule needs a kind"),
        (
            'get: "/v1/x" additional_bindings { get: "/v1/y" additional_bindings { get: "/z" } }',
            "cannot nest",
        ),
    ],
)
def test_rules_that_cannot_be_served_fail_at_compile_time(rule: str, problem: str) -> None:
    with pytest.raises(HttpRuleError, match=problem) as raised:
        http_routes(service_with(rule))

    assert str(raised.value).startswith("test.bad.Bad.Call0: ")


def test_a_message_cannot_be_a_path_variable() -> None:
    with pytest.raises(HttpRuleError, match="must be a primitive field"):
        http_routes(service_with('get: "/v1/{transfer}"', request="PostTransferRequest"))
