"""An OpenAPI 3.1 document for the REST API, derived from the services' descriptors.

One operation per HTTP binding (see :mod:`ledgerd.gateway.http_rules`), schemas from
:mod:`ledgerd.gateway.json_schema`, prose from the .proto comments. ``make generate`` writes
the document to docs/openapi.yaml; the server builds the same document at run time with
:func:`openapi_for` over the descriptor set shipped in the package.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import yaml
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import ServiceDescriptor

from ledgerd.gateway.comments import CommentIndex, summary
from ledgerd.gateway.descriptors import is_required, services_in
from ledgerd.gateway.http_rules import FieldPath, HttpRoute, http_routes
from ledgerd.gateway.json_schema import (
    INPUT_SUFFIX,
    SCHEMA_REF_PREFIX,
    Direction,
    JsonObject,
    SchemaSet,
)
from ledgerd.gateway.openapi_security import SCHEME, TOKENS_REQUIRED, OAuth2Security
from ledgerd.gateway.path_template import Segment, SegmentKind
from ledgerd.kernel.rules import ApiExample, ApiRules

OPENAPI_VERSION = "3.1.0"
JSON = "application/json"
# Newline-delimited JSON: a server-streaming RPC answers with one message per line.
NDJSON = "application/x-ndjson"
PROBLEM = "Problem"
DEFAULT_SERVERS: tuple[Mapping[str, str], ...] = (
    {"url": "/", "description": "The server this document was fetched from"},
)

_PROBLEM_SCHEMA: JsonObject = {
    "type": "object",
    "description": (
        "The body of every error response. It carries the same stable code as the gRPC "
        "status's google.rpc.ErrorInfo reason (and as the ledgerd.v1.Error message)."
    ),
    "properties": {
        "code": {
            "type": "string",
            "description": "A stable, machine-readable code such as INSUFFICIENT_FUNDS.",
        },
        "message": {"type": "string", "description": "What went wrong, for a human."},
        "details": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Facts about the error, such as the offending field.",
        },
    },
    "required": ["code", "message"],
}

# Response component name and description per status. Spelled out here rather than taken from
# http.HTTPStatus, whose phrases change between Python versions (422) and would make the
# generated document differ from one machine to the next.
_STATUSES: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "The request is malformed or invalid."),
    401: (
        "Unauthorized",
        "No valid access token was presented: none, a malformed one, or one expired or revoked.",
    ),
    403: ("Forbidden", "The access token lacks the scope the operation needs."),
    404: ("NotFound", "A resource the request names does not exist."),
    409: ("Conflict", "The request conflicts with an earlier one or lost a race."),
    422: ("UnprocessableContent", "The ledger's current state refuses the request."),
    429: ("TooManyRequests", "Too many requests; retry later."),
}
_DEFAULT_RESPONSE = "Error"
# RFC 6750 §3: a refused bearer token is answered with a challenge saying why.
_BEARER_CHALLENGE: JsonObject = {
    "description": 'The Bearer challenge (RFC 6750 §3), such as `Bearer error="invalid_token"`.',
    "schema": {"type": "string"},
}
# Statuses a read (GET) cannot produce: it neither conflicts nor meets a refusing state, and
# only writes queue up for a shared transaction (429 when that queue is full).
_WRITE_ONLY_STATUSES = frozenset({409, 422, 429})
# Statuses only an operation that needs a token can produce.
_ACCESS_STATUSES = frozenset({401, 403})
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_OPENAPI_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})

_REGEX_SYNTAX = frozenset("^$\\.*+?()[]{}|")

_JSON_CONVENTIONS = """\
Requests and responses are JSON in the proto3 JSON mapping, with the .proto field names
(snake_case). 64-bit integers are strings in responses and may be strings or numbers in
requests; enums are their value names; timestamps are RFC 3339 strings; unknown request
fields are rejected with 400. Errors have the `Problem` form: a stable `code`, a `message`
and string `details`."""


def openapi_for(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
    *,
    error_statuses: Mapping[str, int] | None = None,
    rules: ApiRules | None = None,
    examples: Mapping[str, ApiExample] | None = None,
    security: OAuth2Security | None = None,
) -> JsonObject:
    """The document for every service in ``descriptor_set``, with its comments.

    At run time pass :func:`ledgerd.gateway.descriptors.load_descriptor_set`'s result;
    ``make generate`` passes the set it has just compiled, so both produce the same document
    as long as they pass the same ``error_statuses``, ``rules``, ``examples`` and ``security``.
    """
    return build_openapi(
        services_in(descriptor_set),
        comments=CommentIndex.from_descriptor_set(descriptor_set),
        error_statuses=error_statuses,
        rules=rules,
        examples=examples,
        security=security,
    )


def build_openapi(  # noqa: PLR0913 - all keyword-only, each a separate knob of the document
    services: Sequence[ServiceDescriptor],
    *,
    comments: CommentIndex | None = None,
    error_statuses: Mapping[str, int] | None = None,
    rules: ApiRules | None = None,
    examples: Mapping[str, ApiExample] | None = None,
    security: OAuth2Security | None = None,
    always_print_fields_with_no_presence: bool = True,
    title: str = "ledgerd API",
    servers: Sequence[Mapping[str, str]] = DEFAULT_SERVERS,
) -> JsonObject:
    """The OpenAPI 3.1 document of ``services``' HTTP bindings.

    ``error_statuses`` maps each stable error code to its HTTP status; the error responses
    then list the codes they may carry. ``rules`` are those the server checks requests by
    (per field and per message); ``examples``, by operation id, a request and its answer;
    ``security``, the OAuth2 scheme and the scope each operation needs (None: no access
    control is documented).
    ``always_print_fields_with_no_presence`` must match how the gateway prints responses
    (see :class:`SchemaSet`).
    """
    comments = comments or CommentIndex()
    routed = [(service, http_routes(service)) for service in services]
    routed = [(service, routes) for service, routes in routed if routes]
    package = routed[0][0].file.package if routed else ""
    schemas = SchemaSet(
        comments=comments,
        package=package,
        always_print_fields_with_no_presence=always_print_fields_with_no_presence,
        rules=rules,
    )
    errors = _ErrorResponses(error_statuses or {}, secured=security is not None)
    paths: JsonObject = {}
    for service, routes in routed:
        for route in routes:
            item = paths.setdefault(route.template.openapi_path(), {})
            item[_operation_key(route, item)] = _operation(
                route, service, schemas, comments, errors, security=security
            )
    for item in paths.values():
        for operation in item.values():
            if example := (examples or {}).get(operation["operationId"]):
                _show_example(operation, example)
    component_schemas = schemas.components()
    component_schemas[PROBLEM] = _PROBLEM_SCHEMA
    renames = _proto_names(component_schemas)
    paths = _renamed(paths, renames)
    component_schemas = {
        renames.get(name, name): _renamed(schema, renames)
        for name, schema in component_schemas.items()
    }
    components: JsonObject = {
        "schemas": dict(sorted(component_schemas.items())),
        "responses": errors.components(),
    }
    if security is not None:
        components["securitySchemes"] = {SCHEME: security.scheme()}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title,
            "version": package.rsplit(".", 1)[-1] or "unversioned",
            "description": _api_description(routed, comments, security),
        },
        "servers": [dict(server) for server in servers],
        "tags": [
            {"name": service.name, "description": comments.of(service)}
            if comments.of(service)
            else {"name": service.name}
            for service, _ in routed
        ],
        "paths": paths,
        "components": components,
    }


def _show_example(operation: JsonObject, example: ApiExample) -> None:
    """``example``'s body and answer, on the operation's request body and 200 response."""
    if example.request is not None and "requestBody" in operation:
        for media in operation["requestBody"]["content"].values():
            media["example"] = dict(example.request)
    answer = example.response
    for media_type, media in operation["responses"]["200"].get("content", {}).items():
        if isinstance(answer, Mapping):
            media["example"] = dict(answer)
        elif media_type == NDJSON:  # the stream's body as it arrives: one JSON text a line
            media["example"] = "".join(
                json.dumps(line, ensure_ascii=False) + "\n" for line in answer
            )


def _proto_names(component_schemas: Mapping[str, JsonObject]) -> dict[str, str]:
    """``X-Input`` → ``X`` where only requests carry ``X``: the schema takes the proto's name.

    Only a message that travels both ways (``Leg``: in a transfer request and in a transfer)
    needs two schemas; the request's keeps the suffix.
    """
    return {
        name: name.removesuffix(INPUT_SUFFIX)
        for name in component_schemas
        if name.endswith(INPUT_SUFFIX) and name.removesuffix(INPUT_SUFFIX) not in component_schemas
    }


def _renamed(value: JsonObject, renames: Mapping[str, str]) -> JsonObject:
    """``value`` with every schema ``$ref`` pointing at its new name."""
    return {
        key: _renamed_ref(item, renames) if key == "$ref" else _renamed_value(item, renames)
        for key, item in value.items()
    }


def _renamed_value(value: object, renames: Mapping[str, str]) -> object:
    if isinstance(value, dict):
        return _renamed(value, renames)
    if isinstance(value, list):
        return [_renamed_value(item, renames) for item in value]
    return value


def _renamed_ref(ref: str, renames: Mapping[str, str]) -> str:
    name = ref.removeprefix(SCHEMA_REF_PREFIX)
    return SCHEMA_REF_PREFIX + renames[name] if name in renames else ref


def openapi_yaml(document: JsonObject) -> str:
    """The document as YAML, keys in the order built (which is deterministic)."""
    return yaml.dump(
        document, Dumper=_DocumentDumper, sort_keys=False, allow_unicode=True, width=100
    )


def openapi_json(document: JsonObject) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


class _DocumentDumper(yaml.SafeDumper):
    """Plain YAML: no &anchors for repeated values, multi-line text as literal blocks."""

    def ignore_aliases(self, data: object) -> bool:  # noqa: ARG002 - never alias anything
        return True


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_DocumentDumper.add_representer(str, _represent_text)


def _api_description(
    routed: Sequence[tuple[ServiceDescriptor, tuple[HttpRoute, ...]]],
    comments: CommentIndex,
    security: OAuth2Security | None,
) -> str:
    headers = dict.fromkeys(comments.of(service.file) for service, _ in routed)
    access = [TOKENS_REQUIRED] if security is not None else []
    return "\n\n".join([*(header for header in headers if header), *access, _JSON_CONVENTIONS])


def _operation_key(route: HttpRoute, path_item: JsonObject) -> str:
    """The route's key in its path item; refuse what OpenAPI cannot tell apart or express."""
    key = route.http_method.lower()
    if key not in _OPENAPI_METHODS:
        msg = f"{route.method.full_name}: OpenAPI has no {route.http_method} operations"
        raise ValueError(msg)
    if key in path_item:
        taken = path_item[key]["operationId"]
        msg = f"{route.method.full_name}: same OpenAPI path and method as {taken}"
        raise ValueError(msg)
    return key


def _operation(  # noqa: PLR0913 - the parts of the document an operation draws on
    route: HttpRoute,
    service: ServiceDescriptor,
    schemas: SchemaSet,
    comments: CommentIndex,
    errors: _ErrorResponses,
    *,
    security: OAuth2Security | None,
) -> JsonObject:
    operation: JsonObject = {"tags": [service.name], "operationId": route.operation_id}
    if comment := comments.of(route.method):
        operation["summary"] = summary(comment)
        if comment != operation["summary"]:
            operation["description"] = comment
    parameters = _path_parameters(route, schemas, comments) + [
        _query_parameter(path, schemas, comments) for path in route.query_parameters
    ]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = _request_body(route, schemas, comments)
    requirement = security.requirement(route.grpc_path) if security is not None else []
    if security is not None:
        operation["security"] = requirement
    operation["responses"] = {
        "200": _success(route, schemas),
        **errors.for_route(route, secured=bool(requirement)),
    }
    operation["x-grpc-method"] = route.grpc_path
    return operation


def _path_parameters(
    route: HttpRoute, schemas: SchemaSet, comments: CommentIndex
) -> list[JsonObject]:
    parameters: list[JsonObject] = []
    for variable, path in zip(route.template.variables, route.path_fields, strict=True):
        schema = schemas.parameter(path.leaf)
        if not route.template.is_single_segment(variable):
            # A multi-segment capture such as {name=shelves/*/books/*}: say what it matches.
            segments = route.template.segments[variable.first : variable.end]
            schema["pattern"] = _capture_pattern(segments)
        parameter: JsonObject = {"name": path.name, "in": "path", "required": True}
        if comment := comments.of(path.leaf):
            parameter["description"] = comment
        parameter["schema"] = schema
        parameters.append(parameter)
    return parameters


def _capture_pattern(segments: Sequence[Segment]) -> str:
    """What a multi-segment variable's value looks like, as an (ECMA-262) regex."""
    pattern = ""
    for index, segment in enumerate(segments):
        separator = "/" if index else ""
        if segment.kind is SegmentKind.ANY:  # zero or more segments: the separator goes too
            pattern += f"({separator}.*)?" if separator else ".*"
        elif segment.kind is SegmentKind.ONE:
            pattern += f"{separator}[^/]+"
        else:  # escape only regex syntax: ECMA-262 rejects other escapes (like \-)
            literal = "".join(
                f"\\{char}" if char in _REGEX_SYNTAX else char for char in segment.literal
            )
            pattern += separator + literal
    return f"^{pattern}$"


def _query_parameter(path: FieldPath, schemas: SchemaSet, comments: CommentIndex) -> JsonObject:
    parameter: JsonObject = {"name": path.name, "in": "query"}
    if all(is_required(field) for field in path.fields):
        parameter["required"] = True
    if comment := comments.of(path.leaf):
        parameter["description"] = comment
    parameter["schema"] = schemas.parameter(path.leaf)
    return parameter


def _request_body(route: HttpRoute, schemas: SchemaSet, comments: CommentIndex) -> JsonObject:
    field = route.body_field
    if field is None:  # the body is WHOLE_BODY: the request minus the fields the path fills
        bound = {path.name for path in route.path_fields if len(path.fields) == 1}
        schema = schemas.message(route.request, Direction.INPUT, exclude=bound)
        schema.pop("description", None)  # said once, on the request body below
        required = bool(schema.get("required"))
        description = comments.of(route.request)
    else:
        schema = schemas.field(field, Direction.INPUT)
        required = is_required(field)
        description = comments.of(field)
    body: JsonObject = {}
    if description:
        body["description"] = description
    body["required"] = required
    body["content"] = {JSON: {"schema": schema}}
    return body


def _success(route: HttpRoute, schemas: SchemaSet) -> JsonObject:
    field = route.response_body
    if field is not None:
        schema = schemas.field(field, Direction.OUTPUT)
        name = f"{route.response.name}.{field.name}"
    else:
        schema = schemas.ref(route.response, Direction.OUTPUT)
        name = schemas.component_name(route.response, Direction.OUTPUT)
    if route.server_streaming:
        description = f"A stream of {name}: one JSON object per line (NDJSON)."
        return {"description": description, "content": {NDJSON: {"schema": schema}}}
    return {"description": f"OK: the {name}.", "content": {JSON: {"schema": schema}}}


class _ErrorResponses:
    """The shared error responses, each listing the error codes it may carry."""

    def __init__(self, error_statuses: Mapping[str, int], *, secured: bool) -> None:
        self._codes: dict[int, list[str]] = {}
        for code, status in sorted(error_statuses.items()):
            self._codes.setdefault(int(status), []).append(code)
        # 4xx get a response each; 5xx (and anything undeclared) fall under "default".
        access = _ACCESS_STATUSES if secured else frozenset()
        self._client_statuses = sorted({400, 404, *access, *filter(_is_client_error, self._codes)})

    def for_route(self, route: HttpRoute, *, secured: bool) -> JsonObject:
        statuses = set(self._client_statuses)
        if not secured:  # no token asked for, none refused
            statuses -= _ACCESS_STATUSES
        if not route.template.variables:  # nothing named in the path that could be missing
            statuses.discard(404)
        if route.http_method in _SAFE_METHODS:
            statuses -= _WRITE_ONLY_STATUSES
        responses: JsonObject = {
            str(status): {"$ref": f"#/components/responses/{_status_name(status)}"}
            for status in sorted(statuses)
        }
        responses["default"] = {"$ref": f"#/components/responses/{_DEFAULT_RESPONSE}"}
        return responses

    def components(self) -> JsonObject:
        responses = {
            _status_name(status): _problem_response(
                _STATUSES.get(status, ("", f"HTTP status {status}."))[1],
                self._codes.get(status, []),
            )
            for status in self._client_statuses
        }
        server_codes = [
            code
            for status, codes in sorted(self._codes.items())
            if not _is_client_error(status)
            for code in codes
        ]
        responses[_DEFAULT_RESPONSE] = _problem_response(
            "Any other error, such as an internal one or an unavailable dependency.", server_codes
        )
        if unauthorized := responses.get(_status_name(401)):
            unauthorized["headers"] = {"WWW-Authenticate": _BEARER_CHALLENGE}
        return responses


def _is_client_error(status: int) -> bool:
    return 400 <= status < 500  # noqa: PLR2004 - the 4xx class


def _status_name(status: int) -> str:
    return _STATUSES.get(status, (f"Status{status}", ""))[0]


def _problem_response(text: str, codes: Sequence[str]) -> JsonObject:
    description = text
    if codes:
        description += " Codes: " + ", ".join(f"`{code}`" for code in codes) + "."
    return {
        "description": description,
        "content": {JSON: {"schema": {"$ref": SCHEMA_REF_PREFIX + PROBLEM}}},
    }
