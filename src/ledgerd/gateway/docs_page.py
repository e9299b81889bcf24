"""A self-contained HTML API reference, rendered from the OpenAPI document.

One page, no fonts, stylesheets or scripts from elsewhere: the server must be able to show its
own documentation offline. Its one inline script (:mod:`ledgerd.gateway.docs_access`) only
fills a pasted access token into the example requests; the page reads well without it.
Operations are grouped by tag and fold open with ``<details>``; schemas are listed once at the
end and linked from where they are used. Every
piece of text from the document goes through :func:`html.escape`; descriptions are Markdown,
of which :mod:`ledgerd.gateway.markdown` renders a small subset (on escaped text).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from ledgerd.gateway.docs_access import content_security_policy, example_request, token_section
from ledgerd.gateway.json_schema import INPUT_SUFFIX, SCHEMA_REF_PREFIX, JsonObject
from ledgerd.gateway.markdown import inline_html, markdown_html

_RESPONSE_REF_PREFIX = "#/components/responses/"
_FORMAT_RANGES = frozenset({(-(2**31), 2**31 - 1), (0, 2**32 - 1)})
_HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:70rem;padding:1rem 2rem;
color:#1d232a}
h1,h2,h3{line-height:1.2}h2{border-bottom:1px solid #d0d7de;padding-bottom:.3rem;
margin-top:2.5rem}
pre{background:#f6f8fa;padding:.5rem;overflow-x:auto}
code,.path{font-family:ui-monospace,monospace;font-size:.92em}
.prose p,.prose ul{margin:.3rem 0}
details{border:1px solid #d0d7de;border-radius:6px;margin:.5rem 0;padding:.2rem .8rem}
details[open]{padding-bottom:.8rem}summary{cursor:pointer;padding:.3rem 0}
.verb{display:inline-block;min-width:4.5rem;font-weight:700;font-family:ui-monospace,monospace}
.get{color:#0969da}.post{color:#1a7f37}.put,.patch{color:#9a6700}.delete{color:#cf222e}
table{border-collapse:collapse;margin:.4rem 0;width:100%}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}.muted{color:#57606a}.req{color:#cf222e;font-size:.85em}
nav ul{columns:2}
"""


def render_docs_page(document: JsonObject) -> str:
    """The whole HTML page for ``document`` (an OpenAPI 3.1 dict, as build_openapi makes)."""
    info: Mapping[str, Any] = document.get("info", {})
    components: Mapping[str, Any] = document.get("components", {})
    operations = list(_operations(document.get("paths", {})))
    title = escape(str(info.get("title", "API")))
    body = [
        f"<h1>{title} <span class='muted'>{escape(str(info.get('version', '')))}</span></h1>",
        _prose(info.get("description", "")),
        token_section(document),
        _contents(document, operations),
        *_operation_groups(document, operations),
        _errors_section(components),
        _schemas_section(components.get("schemas", {})),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{content_security_policy()}\">"
        f"<title>{title}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(part for part in body if part)
        + "\n</body></html>\n"
    )


def _operations(paths: Mapping[str, Any]) -> Iterable[tuple[str, str, Mapping[str, Any]]]:
    for path, item in paths.items():
        for method in _HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def _contents(document: JsonObject, operations: list[tuple[str, str, Mapping[str, Any]]]) -> str:
    items = "".join(
        f"<li><a href='#{_anchor('op', operation.get('operationId', path))}'>"
        f"<span class='verb {method}'>{method.upper()}</span> <span class='path'>"
        f"{escape(path)}</span></a></li>"
        for path, method, operation in operations
    )
    servers = ", ".join(
        f"<code>{escape(str(server.get('url', '')))}</code>"
        for server in document.get("servers", [])
    )
    server_line = f"<p>Servers: {servers}</p>" if servers else ""
    return f"{server_line}<nav><h2>Operations</h2><ul>{items}</ul></nav>"


def _operation_groups(
    document: JsonObject, operations: list[tuple[str, str, Mapping[str, Any]]]
) -> list[str]:
    tag_texts = {tag["name"]: tag.get("description", "") for tag in document.get("tags", [])}
    groups: dict[str, list[str]] = {}
    for path, method, operation in operations:
        tag = (operation.get("tags") or ["Other"])[0]
        groups.setdefault(tag, []).append(_operation(path, method, operation))
    return [
        f"<section><h2 id='{_anchor('tag', tag)}'>{escape(tag)}</h2>"
        f"{_prose(tag_texts.get(tag, ''))}{''.join(rendered)}</section>"
        for tag, rendered in groups.items()
    ]


def _operation(path: str, method: str, operation: Mapping[str, Any]) -> str:
    operation_id = str(operation.get("operationId", ""))
    heading = (
        f"<details id='{_anchor('op', operation_id or path)}'><summary>"
        f"<span class='verb {method}'>{method.upper()}</span> "
        f"<span class='path'>{escape(path)}</span> — {inline_html(operation.get('summary', ''))}"
        f" <span class='muted'>({escape(operation_id)})</span></summary>"
    )
    parts = [heading, _prose(operation.get("description", ""))]
    if grpc_method := operation.get("x-grpc-method"):
        parts.append(f"<p class='muted'>gRPC: <code>{escape(str(grpc_method))}</code></p>")
    if parameters := operation.get("parameters"):
        parts.append(_parameters(parameters))
    if body := operation.get("requestBody"):
        parts.append(_request_body(body))
    parts.append(example_request(path, method, operation))
    parts.append(_responses(operation.get("responses", {})))
    parts.append("</details>")
    return "".join(parts)


def _parameters(parameters: list[Mapping[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td><code>{escape(str(parameter.get('name', '')))}</code>"
        f"{_required_mark(required=bool(parameter.get('required')))}</td>"
        f"<td>{escape(str(parameter.get('in', '')))}</td>"
        f"<td>{_type(parameter.get('schema', {}))}</td>"
        f"<td>{_prose(parameter.get('description', ''))}</td></tr>"
        for parameter in parameters
    )
    return (
        "<h4>Parameters</h4><table><tr><th>Name</th><th>In</th><th>Type</th>"
        f"<th>Description</th></tr>{rows}</table>"
    )


def _request_body(body: Mapping[str, Any]) -> str:
    parts = ["<h4>Request body" + _required_mark(required=bool(body.get("required"))) + "</h4>"]
    parts.append(_prose(body.get("description", "")))
    for media_type, content in body.get("content", {}).items():
        parts.append(f"<p class='muted'><code>{escape(media_type)}</code></p>")
        parts.append(_schema_body(content.get("schema", {})))
        parts.append(_example("Example", content))
    return "".join(parts)


def _responses(responses: Mapping[str, Any]) -> str:
    rows: list[str] = []
    for status, response in responses.items():
        ref = response.get("$ref", "")
        if ref.startswith(_RESPONSE_REF_PREFIX):
            name = ref.removeprefix(_RESPONSE_REF_PREFIX)
            shown = f"<a href='#{_anchor('response', name)}'>{escape(name)}</a>"
        else:
            media = [
                f"<code>{escape(media_type)}</code>: {_type(content.get('schema', {}))}"
                for media_type, content in response.get("content", {}).items()
            ]
            shown = escape(response.get("description", "")) + "<br>" + "<br>".join(media)
        rows.append(f"<tr><td><code>{escape(status)}</code></td><td>{shown}</td></tr>")
    answered = responses.get("200", {}).get("content", {}).values()
    examples = "".join(_example("Example answer", content) for content in answered)
    return f"<h4>Responses</h4><table>{''.join(rows)}</table>{examples}"


def _example(title: str, content: Mapping[str, Any]) -> str:
    if "example" not in content:
        return ""
    example = content["example"]
    text = (
        example if isinstance(example, str) else json.dumps(example, indent=2, ensure_ascii=False)
    )
    shown = escape(text)
    return f"<p class='muted'>{escape(title)}</p><pre><code>{shown}</code></pre>"


def _errors_section(components: Mapping[str, Any]) -> str:
    responses: Mapping[str, Any] = components.get("responses", {})
    if not responses:
        return ""
    rows = "".join(
        f"<tr id='{_anchor('response', name)}'><td>{escape(name)}</td>"
        f"<td>{_prose(response.get('description', ''))}</td></tr>"
        for name, response in responses.items()
    )
    return (
        "<section><h2 id='errors'>Errors</h2><p>Every error response has a "
        f"<a href='#{_anchor('schema', 'Problem')}'>Problem</a> body.</p>"
        f"<table><tr><th>Response</th><th>Meaning and codes</th></tr>{rows}</table></section>"
    )


def _schemas_section(schemas: Mapping[str, Any]) -> str:
    entries = "".join(
        f"<details id='{_anchor('schema', name)}'><summary>{_schema_name(name)} "
        f"<span class='muted'>{_summary_type(schema)}</span></summary>"
        f"{_schema_body(schema)}</details>"
        for name, schema in schemas.items()
    )
    return f"<section><h2 id='schemas'>Schemas</h2>{entries}</section>"


def _schema_body(schema: Mapping[str, Any]) -> str:
    """A schema's description and, for an object, a table of its properties."""
    parts = [_prose(schema.get("description", ""))]
    if "$ref" in schema or schema.get("type") != "object":
        parts.append(f"<p>{_type(schema)}</p>")
    properties: Mapping[str, Any] = schema.get("properties", {})
    if properties:
        required = set(schema.get("required", []))
        rows = "".join(
            f"<tr><td><code>{escape(name)}</code>{_required_mark(required=name in required)}"
            f"</td><td>{_type(prop)}</td><td>{_prose(prop.get('description', ''))}"
            "</td></tr>"
            for name, prop in properties.items()
        )
        parts.append(
            f"<table><tr><th>Field</th><th>Type</th><th>Description</th></tr>{rows}</table>"
        )
    if schema.get("additionalProperties") is False:
        parts.append("<p class='muted'>No other fields are accepted.</p>")
    parts.extend(_prose(rule.get("description", "")) for rule in schema.get("allOf", []))
    return "".join(parts)


def _type(schema: Mapping[str, Any]) -> str:
    """A short, readable type: ``string (int64)``, ``array of Leg``, ``map of string``."""
    if ref := schema.get("$ref"):
        name = str(ref).removeprefix(SCHEMA_REF_PREFIX)
        return f"<a href='#{_anchor('schema', name)}'>{_schema_name(name)}</a>"
    kind = schema.get("type")
    if kind == "array":
        return "array of " + _type(schema.get("items", {}))
    if kind == "object" and isinstance(schema.get("additionalProperties"), Mapping):
        return "map of " + _type(schema["additionalProperties"])
    text = " or ".join(kind) if isinstance(kind, list) else str(kind or "any")
    details = [str(schema[key]) for key in ("format",) if key in schema]
    bounds = (schema.get("minimum"), schema.get("maximum"))
    # A format's own range (int32's ±2**31) says nothing "int32" did not: only a rule's is shown.
    shown = ("pattern",) if bounds in _FORMAT_RANGES else ("pattern", "minimum", "maximum")
    details += [f"{key} {schema[key]}" for key in shown if key in schema]
    if "enum" in schema:
        details.append("one of " + ", ".join(str(value) for value in schema["enum"]))
    suffix = f" <span class='muted'>({escape('; '.join(details))})</span>" if details else ""
    return escape(text) + suffix


def _schema_name(name: str) -> str:
    """The proto's name; ``Leg-Input``, a message that travels both ways, as it is in requests."""
    if name.endswith(INPUT_SUFFIX):
        proto_name = escape(name.removesuffix(INPUT_SUFFIX))
        return f"<code>{proto_name}</code> <span class='muted'>(in requests)</span>"
    return f"<code>{escape(name)}</code>"


def _summary_type(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return "enum"
    return escape(str(schema.get("type", "")))


def _required_mark(*, required: bool) -> str:
    return " <span class='req'>required</span>" if required else ""


def _prose(text: object, tag: str = "div") -> str:
    """A description, its Markdown rendered (:mod:`ledgerd.gateway.markdown` escapes it all)."""
    if not text:
        return ""
    return f"<{tag} class='prose'>{markdown_html(str(text))}</{tag}>"


def _anchor(kind: str, name: str) -> str:
    return f"{kind}-" + re.sub(r"[^A-Za-z0-9_.-]", "-", name)
