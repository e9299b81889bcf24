import pytest
from google.protobuf.descriptor import ServiceDescriptor

from ledgerd.gateway.http_rules import http_routes
from ledgerd.gateway.router import (
    BadPathError,
    MethodNotAllowedError,
    RouteNotFoundError,
    Router,
)
from tests.unit.gateway.services import service_with

ACCOUNT = {"ledger": "m", "account": "a"}
TRANSFER = {"ledger": "m", "transfer": "t"}


@pytest.fixture(scope="module")
def ledger_router(ledger_service: ServiceDescriptor) -> Router:
    return Router(http_routes(ledger_service))


@pytest.fixture(scope="module")
def library_router(library_service: ServiceDescriptor) -> Router:
    return Router(http_routes(library_service))


@pytest.mark.parametrize(
    ("verb", "path", "rpc", "variables"),
    [
        ("POST", "/v1/ledgers", "CreateLedger", {}),
        ("GET", "/v1/ledgers/main", "GetLedger", {"ledger": "main"}),
        ("POST", "/v1/ledgers/main/accounts", "CreateAccount", {"ledger": "main"}),
        ("GET", "/v1/ledgers/main/accounts", "ListAccounts", {"ledger": "main"}),
        ("GET", "/v1/ledgers/m/accounts/a", "GetAccount", ACCOUNT),
        ("POST", "/v1/ledgers/m/accounts/a:freeze", "FreezeAccount", ACCOUNT),
        ("POST", "/v1/ledgers/m/accounts/a:unfreeze", "UnfreezeAccount", ACCOUNT),
        ("POST", "/v1/ledgers/m/accounts/a:close", "CloseAccount", ACCOUNT),
        ("POST", "/v1/ledgers/m/transfers", "PostTransfer", {"ledger": "m"}),
        ("POST", "/v1/ledgers/m/transfers:batch", "PostTransfers", {"ledger": "m"}),
        ("GET", "/v1/ledgers/m/transfers", "ListTransfers", {"ledger": "m"}),
        ("GET", "/v1/ledgers/m/transfers/t", "GetTransfer", TRANSFER),
        ("POST", "/v1/ledgers/m/transfers/t:capture", "CapturePending", TRANSFER),
        ("POST", "/v1/ledgers/m/transfers/t:void", "VoidPending", TRANSFER),
        ("POST", "/v1/ledgers/m/transfers/t:reverse", "ReverseTransfer", TRANSFER),
        ("GET", "/v1/ledgers/m/accounts/a/balance", "GetBalance", ACCOUNT),
        ("GET", "/v1/ledgers/m/accounts/a/entries", "ListEntries", ACCOUNT),
        (
            "GET",
            "/v1/ledgers/m/accounts/a/statement:export",
            "ExportStatement",
            ACCOUNT,
        ),
    ],
)
def test_every_ledger_rpc_is_reachable(
    ledger_router: Router, verb: str, path: str, rpc: str, variables: dict[str, str]
) -> None:
    found = ledger_router.match(verb, path)

    assert found.route.method.name == rpc
    assert found.path_variables == variables


def test_the_http_method_is_case_insensitive(ledger_router: Router) -> None:
    assert ledger_router.match("get", "/v1/ledgers/main").route.method.name == "GetLedger"


def test_custom_verbs_never_fall_into_a_path_variable(ledger_router: Router) -> None:
    # transfers:batch is one segment: neither the collection nor a transfer id.
    assert ledger_router.match("POST", "/v1/ledgers/m/transfers:batch").route.method.name == (
        "PostTransfers"
    )
    with pytest.raises(MethodNotAllowedError):
        ledger_router.match("GET", "/v1/ledgers/m/transfers:batch")
    with pytest.raises(RouteNotFoundError):
        ledger_router.match("POST", "/v1/ledgers/m/transfers:unknown")


def test_ids_may_contain_colons_and_encoded_characters(ledger_router: Router) -> None:
    # Ids match ^[A-Za-z0-9_:.-]{1,128}$, so a raw ':' that is not a known verb is id text.
    found = ledger_router.match("GET", "/v1/ledgers/m/accounts/user:42")
    assert (found.route.method.name, found.path_variables["account"]) == ("GetAccount", "user:42")

    # Percent-encoded, even a verb's spelling is just part of the id.
    found = ledger_router.match("GET", "/v1/ledgers/m/accounts/a%3Afreeze")
    assert (found.route.method.name, found.path_variables["account"]) == ("GetAccount", "a:freeze")

    found = ledger_router.match("POST", "/v1/ledgers/m%2Fx/accounts/caf%C3%A9%20b:freeze")
    assert found.route.method.name == "FreezeAccount"
    assert found.path_variables == {"ledger": "m/x", "account": "café b"}


def test_an_unknown_path_is_not_found(ledger_router: Router) -> None:
    for path in ["/", "/v1", "/v2/ledgers", "/v1/ledgers/m/accounts/a/b/c", "/v1/ledgers/"]:
        with pytest.raises(RouteNotFoundError):
            ledger_router.match("GET", path)


def test_a_known_path_with_another_method_is_not_allowed(ledger_router: Router) -> None:
    with pytest.raises(MethodNotAllowedError) as raised:
        ledger_router.match("DELETE", "/v1/ledgers/m/accounts")

    assert raised.value.allowed == ("GET", "POST")
    assert raised.value.answered == ("GET", "HEAD", "POST")
    assert str(raised.value) == (
        "DELETE is not allowed on /v1/ledgers/m/accounts; use GET, HEAD or POST"
    )


@pytest.mark.parametrize("verb", ["GET", "OPTIONS", "PUT"])
@pytest.mark.parametrize(
    "path",
    [
        "/v1/ledgers/m/accounts/a:close",
        "/v1/ledgers/m/accounts/a:freeze",
        "/v1/ledgers/m/transfers/t:capture",
        "/v1/ledgers/m/transfers:batch",
    ],
)
def test_an_action_path_allows_only_its_action(ledger_router: Router, verb: str, path: str) -> None:
    # GetAccount's template matches ".../a:close" too (an account "a:close"), but the most
    # specific template that matches names the resource: the action, which is POST only.
    with pytest.raises(MethodNotAllowedError) as raised:
        ledger_router.match(verb, path)

    assert raised.value.allowed == ("POST",)
    assert str(raised.value).endswith("; use POST")


def test_an_id_spelled_like_an_action_is_reached_with_its_colon_encoded(
    ledger_router: Router,
) -> None:
    found = ledger_router.match("GET", "/v1/ledgers/m/accounts/a%3Aclose")

    assert (found.route.method.name, found.path_variables["account"]) == ("GetAccount", "a:close")


def test_templates_of_one_shape_make_one_resource(library_router: Router) -> None:
    # GetBook and UpdateBook bind different fields over the same segments: one resource.
    with pytest.raises(MethodNotAllowedError) as raised:
        library_router.match("DELETE", "/v1/shelves/s1/books/b1")

    assert raised.value.allowed == ("GET", "PATCH")


def test_a_malformed_path_is_a_bad_request_not_a_miss(ledger_router: Router) -> None:
    with pytest.raises(BadPathError):
        ledger_router.match("GET", "/v1/ledgers/%E2%28")


def test_literal_segments_beat_variables_whatever_the_declaration_order(
    library_router: Router,
) -> None:
    assert library_router.match("GET", "/v1/shelves/featured").route.method.name == (
        "GetFeaturedShelf"
    )
    assert library_router.match("GET", "/v1/shelves/fiction").route.method.name == "GetShelf"


def test_additional_bindings_and_multi_segment_variables(library_router: Router) -> None:
    by_name = library_router.match("GET", "/v1/shelves/s1/books/b%2F1")
    by_parts = library_router.match("GET", "/v1/shelves/s%201/volumes/b1")

    assert by_name.route.operation_id == "GetBook"
    # A multi-segment capture keeps "%2F" encoded: the value's own "/" stay unambiguous.
    assert by_name.path_variables == {"name": "shelves/s1/books/b%2F1"}
    assert by_parts.route.operation_id == "GetBook_2"
    assert by_parts.path_variables == {"shelf.id": "s 1", "book_id": "b1"}

    patch = library_router.match("PATCH", "/v1/shelves/s1/books/b1")
    assert (patch.route.method.name, patch.path_variables) == (
        "UpdateBook",
        {"book.name": "shelves/s1/books/b1"},
    )


def test_double_wildcards_custom_methods_and_any_method_rules(library_router: Router) -> None:
    found = library_router.match("GET", "/v1/files/docs/2024/report.txt:read")
    assert (found.route.method.name, found.path_variables) == (
        "ReadFile",
        {"path": "files/docs/2024/report.txt"},
    )
    assert library_router.match("GET", "/v1/files:read").path_variables == {"path": "files"}
    assert library_router.match("HEAD", "/v1/ping").route.method.name == "Ping"
    assert library_router.match("DELETE", "/v1/shelves/s1:purge").route.method.name == (
        "PurgeShelf"
    )


def test_routes_are_tried_most_specific_first(ledger_router: Router) -> None:
    keys = [route.template.specificity() for route in ledger_router.routes]

    assert keys == sorted(keys)


def test_the_same_binding_twice_is_refused(ledger_service: ServiceDescriptor) -> None:
    routes = http_routes(ledger_service)

    with pytest.raises(ValueError, match="bound twice"):
        Router([*routes, routes[0]])


def test_a_custom_rule_of_kind_star_accepts_any_method() -> None:
    router = Router(http_routes(service_with('custom { kind: "*" path: "/v1/{ledger}/anything" }')))

    for verb in ["GET", "POST", "PROPFIND"]:
        assert router.match(verb, "/v1/main/anything").path_variables == {"ledger": "main"}
