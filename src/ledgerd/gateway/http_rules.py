"""HTTP routes compiled from the `google.api.http` rules of a gRPC service.

Each rule (and each of its ``additional_bindings``) becomes one :class:`HttpRoute`: the HTTP
method, the parsed path template with its variables resolved to request fields, what the body
carries, and which request fields are left to query parameters. Rules are checked as they are
compiled, so a mistake in the .proto fails at start-up (and in the unit tests), not on the
first request that happens to reach it.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from google.api import http_pb2
from google.protobuf.descriptor import (
    Descriptor,
    FieldDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)

from ledgerd.gateway.descriptors import http_rule_of, is_json_scalar, is_map, is_well_known
from ledgerd.gateway.path_template import PathTemplate, PathTemplateError, parse_path_template

# The rule's body is "*": every request field not bound by the path travels in the body.
WHOLE_BODY = "*"
_STANDARD_METHODS = ("get", "put", "post", "delete", "patch")


class HttpRuleError(ValueError):
    """A `google.api.http` rule that cannot be served as written."""


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A chain of fields from the request message down to one (leaf) field."""

    fields: tuple[FieldDescriptor, ...]

    @property
    def name(self) -> str:
        """Dotted proto field names, as used in path templates and query parameters."""
        return ".".join(field.name for field in self.fields)

    @property
    def leaf(self) -> FieldDescriptor:
        return self.fields[-1]


@dataclass(frozen=True, slots=True)
class HttpRoute:
    """One HTTP binding of one RPC."""

    method: MethodDescriptor
    # Upper case ("GET", "POST", ...), or "*" for a custom rule that accepts any method.
    http_method: str
    template: PathTemplate
    # The rule's body: WHOLE_BODY, the name of a top-level request field, or None (no body).
    body: str | None
    # The response field sent as the HTTP body instead of the whole response, if any.
    response_body: FieldDescriptor | None
    # Resolved ``template.variables``, in the same order.
    path_fields: tuple[FieldPath, ...]
    # Request fields a client may set as ``?name=value``; empty when the body is WHOLE_BODY.
    query_parameters: tuple[FieldPath, ...]
    # 0 for the rule itself, 1, 2, ... for its additional_bindings in order.
    binding: int

    @property
    def request(self) -> Descriptor:
        return self.method.input_type

    @property
    def response(self) -> Descriptor:
        return self.method.output_type

    @property
    def server_streaming(self) -> bool:
        return self.method.server_streaming

    @property
    def body_field(self) -> FieldDescriptor | None:
        """The request field the body fills, when the body is one field."""
        if self.body is None or self.body == WHOLE_BODY:
            return None
        return self.request.fields_by_name[self.body]

    @property
    def grpc_path(self) -> str:
        """``/package.Service/Method``, the method's name on the wire."""
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def operation_id(self) -> str:
        """The RPC name, suffixed ``_2``, ``_3``, ... for additional bindings."""
        return self.method.name if self.binding == 0 else f"{self.method.name}_{self.binding + 1}"


def http_routes(service: ServiceDescriptor) -> tuple[HttpRoute, ...]:
    """Every HTTP binding of the service's methods, in declaration order.

    Methods without a `google.api.http` option get no route.
    """
    routes: list[HttpRoute] = []
    for method in service.methods:
        rule = http_rule_of(method)
        if rule is None:
            continue
        routes.append(_compile(method, rule, binding=0))
        for index, extra in enumerate(rule.additional_bindings, start=1):
            if extra.additional_bindings:
                raise _error(method, "additional_bindings cannot nest")
            routes.append(_compile(method, extra, binding=index))
    return tuple(routes)


def _compile(method: MethodDescriptor, rule: http_pb2.HttpRule, *, binding: int) -> HttpRoute:
    http_method, path = _method_and_path(method, rule)
    try:
        template = parse_path_template(path)
    except PathTemplateError as error:
        raise _error(method, str(error)) from None
    request = method.input_type
    path_fields = tuple(_path_field(method, variable.field_path) for variable in template.variables)
    body = rule.body or None
    if body is not None and body != WHOLE_BODY:
        _top_level_field(method, request, body, "body")
        # The path may fill fields *inside* the body field (Google's `{book.name=...}` with
        # body "book"), but not the body field itself.
        if any(path.name == body for path in path_fields):
            raise _error(method, f"body field {body!r} is also bound by the path")
    response_body = (
        _top_level_field(method, method.output_type, rule.response_body, "response_body")
        if rule.response_body
        else None
    )
    return HttpRoute(
        method=method,
        http_method=http_method,
        template=template,
        body=body,
        response_body=response_body,
        path_fields=path_fields,
        query_parameters=_query_parameters(request, body, path_fields),
        binding=binding,
    )


def _method_and_path(method: MethodDescriptor, rule: http_pb2.HttpRule) -> tuple[str, str]:
    pattern = rule.WhichOneof("pattern")
    if pattern is None:
        raise _error(method, "the rule names no HTTP method and path")
    if pattern == "custom":
        if not rule.custom.kind:
            raise _error(method, "a custom rule needs a kind")
        return rule.custom.kind.upper(), rule.custom.path
    if pattern not in _STANDARD_METHODS:  # a newer HttpRule than this code knows
        raise _error(method, f"unsupported pattern {pattern!r}")
    path: str = getattr(rule, pattern)
    return pattern.upper(), path


def _path_field(method: MethodDescriptor, names: tuple[str, ...]) -> FieldPath:
    """Resolve a template variable; http.proto allows only singular, primitive leaves."""
    fields: list[FieldDescriptor] = []
    message: Descriptor | None = method.input_type
    for name in names:
        if message is None:
            raise _error(method, f"{'.'.join(names)}: {fields[-1].name} is not a message")
        field = message.fields_by_name.get(name)
        if field is None:
            raise _error(method, f"{'.'.join(names)}: no field {name!r} in {message.full_name}")
        if field.is_repeated:
            raise _error(method, f"{'.'.join(names)}: a path variable cannot be repeated")
        fields.append(field)
        message = field.message_type
    if message is not None:
        raise _error(method, f"{'.'.join(names)}: a path variable must be a primitive field")
    return FieldPath(tuple(fields))


def _top_level_field(
    method: MethodDescriptor, message: Descriptor, name: str, role: str
) -> FieldDescriptor:
    field = message.fields_by_name.get(name)
    if field is None:
        raise _error(method, f"{role} {name!r} is not a field of {message.full_name}")
    return field


def _query_parameters(
    request: Descriptor, body: str | None, path_fields: tuple[FieldPath, ...]
) -> tuple[FieldPath, ...]:
    """The leaf fields neither the path nor the body carries, per http.proto's rules.

    Scalars, enums and repeated scalars are parameters; a singular message is expanded into
    its fields (``sub.subfield``). Maps and repeated messages cannot be expressed in a query
    string and are left out. Well-known types written as a JSON string (Timestamp and
    friends) count as scalars.
    """
    if body == WHOLE_BODY:
        return ()
    bound = {path.name for path in path_fields}
    if body is not None:
        bound.add(body)
    found: list[FieldPath] = []

    def visit(
        message: Descriptor, prefix: tuple[FieldDescriptor, ...], open_types: AbstractSet[str]
    ) -> None:
        for field in message.fields:
            path = FieldPath((*prefix, field))
            nested = field.message_type
            if path.name in bound or is_map(field):
                continue
            if nested is None or is_json_scalar(field):
                found.append(path)
            elif not (field.is_repeated or is_well_known(nested) or nested.full_name in open_types):
                # open_types: a message that contains itself would expand forever
                visit(nested, path.fields, open_types | {nested.full_name})

    visit(request, (), frozenset({request.full_name}))
    return tuple(found)


def _error(method: MethodDescriptor, problem: str) -> HttpRuleError:
    return HttpRuleError(f"{method.full_name}: {problem}")
