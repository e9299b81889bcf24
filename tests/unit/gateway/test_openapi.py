"""The OpenAPI document: valid OpenAPI 3.1, and faithful to the HTTP rules it comes from."""

import dataclasses
from typing import Any

import jsonschema_rs
import pytest
import yaml
from google.protobuf.descriptor import ServiceDescriptor

from ledgerd.gateway.comments import CommentIndex
from ledgerd.gateway.descriptors import load_descriptor_set
from ledgerd.gateway.http_rules import http_routes
from ledgerd.gateway.json_forms import TIMESTAMP_TEXT
from ledgerd.gateway.json_schema import JsonObject
from ledgerd.gateway.openapi import NDJSON, build_openapi, openapi_json, openapi_yaml
from ledgerd.identity.domain.scopes import SCOPE_MEANINGS
from ledgerd.kernel.ids import ID_PATTERN
from ledgerd.ledger.entrypoints.grpc.api_examples import LEDGER_API_EXAMPLES
from ledgerd.main.api_docs import error_statuses, oauth2_security
from ledgerd.main.bounded_context import (
    merged_access,
    merged_examples,
    merged_rules,
    services_of,
)
from ledgerd.main.contexts import ENABLED_CONTEXTS
from ledgerd.main.contexts.ledger import LEDGER
from ledgerd.platform.api.access import MethodAccess
from ledgerd.v1 import ledger_pb2
from tests.openapi_schema import openapi_31_validator
from tests.unit.gateway.json_schemas import DRAFT_2020_12, walk
from tests.unit.gateway.services import service_with

# Where OpenAPI puts a Schema Object: (..., "schema") in parameters and media types, and each
# entry of components.schemas.
_SCHEMA_KEYS = {"schema"}

# A required id in the path: the kernel's id rule ("." and ".." match the pattern but not it).
ID_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "pattern": ID_PATTERN.pattern,
    "not": {"enum": [".", ".."]},
}


# Every service the server documents, as ``ledgerd_openapi`` takes them.
SERVED = services_of(ENABLED_CONTEXTS)


def _operations(document: JsonObject) -> dict[str, tuple[str, str, JsonObject]]:
    return {
        operation["operationId"]: (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def _resolve(document: JsonObject, node: JsonObject) -> Any:  # noqa: ANN401 - any JSON
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


# --- validity --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ledger_document", "library_document"])
def test_the_document_is_valid_openapi_3_1(name: str, request: pytest.FixtureRequest) -> None:
    document = request.getfixturevalue(name)
    validator = openapi_31_validator()

    assert [error.message for error in validator.iter_errors(document)] == []
    assert document["openapi"] == "3.1.0"


@pytest.mark.parametrize("name", ["ledger_document", "library_document"])
def test_every_schema_object_is_valid_json_schema_2020_12(
    name: str, request: pytest.FixtureRequest
) -> None:
    # The OpenAPI schema above does not look inside Schema Objects; the meta-schema does.
    document = request.getfixturevalue(name)
    schemas = [
        (path, node)
        for path, node in walk(document)
        if (path and path[-1] in _SCHEMA_KEYS)
        or (path[:2] == ("components", "schemas") and len(path) == 3)
    ]
    assert len(schemas) > 20  # the walk found them

    for path, schema in schemas:
        assert jsonschema_rs.meta.is_valid({"$schema": DRAFT_2020_12, **schema}), path


@pytest.mark.parametrize("name", ["ledger_document", "library_document"])
def test_every_reference_resolves(name: str, request: pytest.FixtureRequest) -> None:
    document = request.getfixturevalue(name)
    references = [
        node["$ref"] for _, node in walk(document) if isinstance(node, dict) and "$ref" in node
    ]

    assert references
    for reference in references:
        assert reference.startswith("#/components/")
        assert _resolve(document, {"$ref": reference}), reference


def test_every_component_is_used(ledger_document: JsonObject) -> None:
    references = {
        node["$ref"]
        for _, node in walk(ledger_document)
        if isinstance(node, dict) and "$ref" in node
    }
    components = ledger_document["components"]

    assert {f"#/components/schemas/{name}" for name in components["schemas"]} | {
        f"#/components/responses/{name}" for name in components["responses"]
    } == references


def test_info_servers_and_tags(ledger_document: JsonObject) -> None:
    info = ledger_document["info"]

    assert (info["title"], info["version"]) == ("ledgerd API", "v1")
    assert info["description"].startswith("The ledgerd API: the single source of truth")
    assert "64-bit integers are strings in responses" in info["description"]
    assert ledger_document["servers"] == [
        {"url": "/", "description": "The server this document was fetched from"}
    ]
    assert ledger_document["tags"] == [
        {
            "name": "LedgerService",
            "description": "Double-entry ledgers: accounts, transfers, holds and the journal.",
        },
        {"name": "StreamService", "description": "Subscriptions to a ledger's events."},
    ]


# --- operations ------------------------------------------------------------------------------


def test_one_operation_per_http_binding_at_its_verb_and_path(
    ledger_document: JsonObject, ledger_service: ServiceDescriptor
) -> None:
    operations = _operations(ledger_document)
    routes = [route for service in SERVED for route in http_routes(service.descriptor)]

    # Every LedgerService method is over HTTP; StreamService's watch is not (SSE serves it).
    assert len(http_routes(ledger_service)) == len(ledger_service.methods)
    assert len(operations) == len(routes)
    for route in routes:
        path, method, operation = operations[route.operation_id]
        assert (path, method) == (route.template.openapi_path(), route.http_method.lower())
        assert operation["tags"] == [route.method.containing_service.name]
        assert operation["x-grpc-method"] == route.grpc_path


def test_additional_bindings_get_suffixed_operation_ids(library_document: JsonObject) -> None:
    operations = _operations(library_document)

    assert operations["GetBook"][:2] == ("/v1/{name}", "get")
    assert operations["GetBook_2"][:2] == ("/v1/shelves/{shelf.id}/volumes/{book_id}", "get")
    assert operations["Ping"][:2] == ("/v1/ping", "head")
    assert "NotOverHttp" not in operations


def test_summary_and_description_come_from_the_rpc_comment(ledger_document: JsonObject) -> None:
    operations = _operations(ledger_document)
    batch = operations["PostTransfers"][2]

    assert (
        batch["summary"]
        == "Post a batch of transfers in one transaction, each with its own result."
    )
    assert batch["description"].endswith("one failure fails them all and nothing is written.")
    assert operations["GetLedger"][2]["summary"] == "Get a ledger."
    assert "description" not in operations["GetLedger"][2]  # nothing beyond the summary


def test_path_parameters_are_the_template_variables(ledger_document: JsonObject) -> None:
    _, _, capture = _operations(ledger_document)["CapturePending"]

    assert [
        (parameter["name"], parameter["in"], parameter["required"], parameter["schema"])
        for parameter in capture["parameters"]
    ] == [("ledger", "path", True, ID_SCHEMA), ("transfer", "path", True, ID_SCHEMA)]


def test_multi_segment_variables_document_their_shape(library_document: JsonObject) -> None:
    _, _, get_book = _operations(library_document)["GetBook"]
    (name, *_) = get_book["parameters"]

    assert name["name"] == "name"
    assert name["schema"]["pattern"] == "^shelves/[^/]+/books/[^/]+$"

    _, _, read_file = _operations(library_document)["ReadFile"]
    (path,) = read_file["parameters"]
    assert path["schema"]["pattern"] == "^files(/.*)?$"  # "**": zero or more segments


def test_query_parameters_for_every_field_not_in_path_or_body(ledger_document: JsonObject) -> None:
    _, _, list_transfers = _operations(ledger_document)["ListTransfers"]
    query = {p["name"]: p for p in list_transfers["parameters"] if p["in"] == "query"}

    assert list(query) == [
        "account",
        "start_time",
        "end_time",
        "page_size",
        "page_token",
        "kind",
        "status",
    ]
    assert query["start_time"]["schema"] == {
        "type": "string",
        "format": "date-time",
        "pattern": TIMESTAMP_TEXT.pattern,
    }
    # 1 to 1000, and 0: proto3 cannot tell it from "unset", which means the default.
    assert query["page_size"]["schema"] == {
        "type": "integer",
        "format": "int32",
        "minimum": 0,
        "maximum": 1000,
    }
    # Not required, so "" (unset, all accounts) besides an id.
    assert query["account"]["schema"] == {
        "type": "string",
        "pattern": "^$|" + ID_PATTERN.pattern,
        "not": {"enum": [".", ".."]},
    }
    assert query["account"]["description"] == "Only transfers that moved this account."
    assert not any(parameter.get("required") for parameter in query.values())

    _, _, list_accounts = _operations(ledger_document)["ListAccounts"]
    (metadata,) = [p for p in list_accounts["parameters"] if p["name"] == "metadata"]
    # A repeated field repeats the parameter: ?metadata=a%3D1&metadata=b%3D2 (form, exploded).
    assert metadata["schema"] == {
        "type": "array",
        "items": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}=[^\\x00]{0,1024}$"},
        "maxItems": 64,
    }
    assert "style" not in metadata  # OpenAPI's default for query: form, explode=true


def test_query_parameters_of_nested_fields_enums_and_64_bit_integers(
    library_document: JsonObject,
) -> None:
    _, _, get_book = _operations(library_document)["GetBook"]
    query = {p["name"]: p for p in get_book["parameters"] if p["in"] == "query"}

    assert list(query) == [
        "shelf.id",
        "book_id",
        "format",
        "filter.tags",
        "filter.since",
        "min_pages",
    ]
    assert query["format"]["schema"] == {"$ref": "#/components/schemas/Book.Format-Input"}
    # In a URL every value is text: a 64-bit integer is just an integer, not "string or integer".
    assert query["min_pages"]["schema"] == {
        "type": "integer",
        "format": "int64",
        "minimum": -(2**63),
        "maximum": 2**63 - 1,
    }
    assert query["min_pages"]["required"] is True


def test_request_bodies_follow_the_body_rule(ledger_document: JsonObject) -> None:
    operations = _operations(ledger_document)

    # body "*": the request minus the path's fields, closed.
    create_account = operations["CreateAccount"][2]["requestBody"]
    schema = create_account["content"]["application/json"]["schema"]
    assert create_account["required"] is True
    assert list(schema["properties"]) == ["id", "asset", "flags", "metadata"]
    assert schema["required"] == ["id", "asset"]
    assert schema["additionalProperties"] is False

    # body "transfer": that field's schema.
    post_transfer = operations["PostTransfer"][2]["requestBody"]
    assert post_transfer["required"] is True
    assert post_transfer["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TransferInput"
    }

    # body "*" with every field in the path: an optional, empty object.
    freeze = operations["FreezeAccount"][2]["requestBody"]
    assert freeze["required"] is False
    assert freeze["content"]["application/json"]["schema"] == {
        "type": "object",
        "additionalProperties": False,
    }

    # No body rule: no body.
    assert "requestBody" not in operations["GetAccount"][2]


def test_body_field_rule_leaves_the_rest_to_the_query(library_document: JsonObject) -> None:
    _, _, update = _operations(library_document)["UpdateBook"]

    assert [(p["name"], p["in"]) for p in update["parameters"]] == [
        ("book.name", "path"),
        ("allow_missing", "query"),
    ]
    assert update["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Book-Input"
    }


def test_a_nested_path_field_leaves_its_message_in_a_whole_body(
    library_document: JsonObject,
) -> None:
    _, _, move = _operations(library_document)["MoveBook"]
    schema = move["requestBody"]["content"]["application/json"]["schema"]

    assert [p["name"] for p in move["parameters"]] == ["book.name"]
    assert list(schema["properties"]) == ["book", "to_shelf"]
    assert schema["required"] == ["to_shelf"]


def test_success_responses(ledger_document: JsonObject, library_document: JsonObject) -> None:
    operations = _operations(ledger_document)

    ok = operations["GetAccount"][2]["responses"]["200"]
    assert ok["content"] == {
        "application/json": {
            "schema": {"$ref": "#/components/schemas/Account"},
            "example": LEDGER_API_EXAMPLES["GetAccount"].response,
        }
    }

    # A server-streaming RPC answers with newline-delimited JSON, one Entry per line.
    stream = operations["ExportStatement"][2]["responses"]["200"]
    assert stream["content"][NDJSON]["schema"] == {"$ref": "#/components/schemas/Entry"}
    assert stream["content"][NDJSON]["example"].count("\n") == len(
        LEDGER_API_EXAMPLES["ExportStatement"].response
    )
    assert "one JSON object per line" in stream["description"]

    # response_body: the HTTP body is that one field.
    count = _operations(library_document)["CountBooks"][2]["responses"]["200"]
    assert count["content"]["application/json"]["schema"]["type"] == "integer"


def test_every_error_response_is_a_problem(ledger_document: JsonObject) -> None:
    for path, method, operation in _operations(ledger_document).values():
        statuses = [status for status in operation["responses"] if status != "200"]
        assert "400" in statuses, (method, path)
        assert "default" in statuses, (method, path)
        for status in statuses:
            response = _resolve(ledger_document, operation["responses"][status])
            assert response["content"] == {
                "application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }


def test_error_statuses_fit_the_operation(ledger_document: JsonObject) -> None:
    def statuses(operation_id: str) -> list[str]:
        return list(_operations(ledger_document)[operation_id][2]["responses"])

    # 401 and 403: every ledger operation needs a token.
    assert statuses("CreateLedger") == [
        *("200", "400", "401", "403", "409", "422", "429", "default")  # no 404
    ]
    assert statuses("GetAccount") == [
        *("200", "400", "401", "403", "404", "default")  # reads do not conflict
    ]
    assert statuses("PostTransfer") == [
        *("200", "400", "401", "403", "404", "409", "422", "429", "default")
    ]


def test_error_responses_list_their_codes(ledger_document: JsonObject) -> None:
    responses = ledger_document["components"]["responses"]

    assert "`VALIDATION_FAILED`" in responses["BadRequest"]["description"]
    assert "`ACCOUNT_NOT_FOUND`" in responses["NotFound"]["description"]
    assert "`IDEMPOTENCY_CONFLICT`" in responses["Conflict"]["description"]
    assert "`INSUFFICIENT_FUNDS`" in responses["UnprocessableContent"]["description"]
    listed = "".join(response["description"] for response in responses.values())
    assert all(f"`{code}`" in listed for code in error_statuses())


def test_the_problem_schema_mirrors_the_error_message(ledger_document: JsonObject) -> None:
    problem = ledger_document["components"]["schemas"]["Problem"]

    assert list(problem["properties"]) == [
        field.name for field in ledger_pb2.Error.DESCRIPTOR.fields
    ]
    assert problem["required"] == ["code", "message"]
    assert problem["properties"]["details"]["additionalProperties"] == {"type": "string"}


def test_operation_ids_are_unique(library_document: JsonObject) -> None:
    ids = [
        operation["operationId"]
        for item in library_document["paths"].values()
        for operation in item.values()
    ]

    assert len(ids) == len(set(ids))


# --- serialisation ---------------------------------------------------------------------------


def test_yaml_and_json_are_deterministic_and_round_trip(ledger_document: JsonObject) -> None:
    text = openapi_yaml(ledger_document)
    again = build_openapi(
        [service.descriptor for service in SERVED],
        comments=CommentIndex.from_descriptor_set(load_descriptor_set()),
        error_statuses=error_statuses(),
        rules=merged_rules(SERVED),
        examples=merged_examples(SERVED),
        security=oauth2_security(SERVED),
    )

    assert openapi_yaml(again) == text  # default-pool descriptors document the same API
    assert yaml.safe_load(text) == ledger_document
    assert "&id" not in text  # no YAML anchors or aliases
    assert yaml.safe_load(openapi_json(ledger_document)) == ledger_document
    assert text.startswith("openapi: 3.1.0\ninfo:\n")


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        (['custom { kind: "*" path: "/v1/x" }'], "OpenAPI has no \\* operations"),
        (['get: "/v1/{ledger=a/*}"', 'get: "/v1/{ledger=b/*}"'], "same OpenAPI path and method"),
        (['get: "/v1/*/x"'], "wildcard outside a variable"),
    ],
)
def test_bindings_openapi_cannot_express_are_refused_not_dropped(
    rules: list[str], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        build_openapi([service_with(*rules)])


# --- access ----------------------------------------------------------------------------------


def test_the_oauth2_scheme_offers_both_flows_and_every_scope(ledger_document: JsonObject) -> None:
    scheme = ledger_document["components"]["securitySchemes"]["oauth2"]

    assert scheme["type"] == "oauth2"
    flows = scheme["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == "/oauth2/token"
    assert flows["authorizationCode"]["authorizationUrl"] == "/oauth2/authorize"
    assert flows["authorizationCode"]["tokenUrl"] == "/oauth2/token"
    expected = {str(scope): meaning for scope, meaning in SCOPE_MEANINGS.items()}
    assert flows["clientCredentials"]["scopes"] == expected
    assert flows["authorizationCode"]["scopes"] == expected
    unauthorized = ledger_document["components"]["responses"]["Unauthorized"]
    assert "WWW-Authenticate" in unauthorized["headers"]
    assert "PKCE" in scheme["description"]
    assert "S256" in scheme["description"]
    assert "access token" in ledger_document["info"]["description"]


def test_each_operation_needs_the_scope_its_rpc_does(ledger_document: JsonObject) -> None:
    access = merged_access(SERVED)
    for operation_id, (_, _, operation) in _operations(ledger_document).items():
        needed = access[operation["x-grpc-method"]].scope
        assert operation["security"] == [{"oauth2": [needed]}], operation_id
        for status in ("401", "403"):
            response = _resolve(ledger_document, operation["responses"][status])
            assert response["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"
            }
    create = _operations(ledger_document)["CreateLedger"][2]
    assert create["security"] == [{"oauth2": ["ledgers.admin"]}]


def test_an_operation_without_an_access_entry_is_refused(ledger_service: ServiceDescriptor) -> None:
    (service,) = LEDGER.services
    access = merged_access([service])
    del access["/ledgerd.v1.LedgerService/GetBalance"]
    security = dataclasses.replace(oauth2_security([service]), access=access)

    with pytest.raises(ValueError, match="GetBalance: no access entry"):
        build_openapi([ledger_service], security=security)


def test_a_public_method_needs_no_token_and_is_never_refused_for_one(
    ledger_service: ServiceDescriptor,
) -> None:
    (service,) = LEDGER.services
    access = merged_access([service])
    access["/ledgerd.v1.LedgerService/GetLedger"] = MethodAccess(scope=None, public=True)
    security = dataclasses.replace(oauth2_security([service]), access=access)

    document = build_openapi([ledger_service], security=security)

    get_ledger = _operations(document)["GetLedger"][2]
    assert get_ledger["security"] == []
    assert not {"401", "403"} & get_ledger["responses"].keys()
    assert "401" in _operations(document)["GetAccount"][2]["responses"]


def test_without_security_nothing_of_access_is_said(library_document: JsonObject) -> None:
    assert "securitySchemes" not in library_document["components"]
    assert not {"Unauthorized", "Forbidden"} & library_document["components"]["responses"].keys()
    for _, _, operation in _operations(library_document).values():
        assert "security" not in operation
        assert not {"401", "403"} & operation["responses"].keys()
