import base64
import hashlib
import re
from html.parser import HTMLParser

from ledgerd.gateway.docs_page import render_docs_page
from ledgerd.gateway.json_schema import JsonObject


class _Collector(HTMLParser):
    """Checks the page is well nested while collecting every attribute and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.tags: set[str] = set()
        self.text: list[str] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes += [(name, value or "") for name, value in attrs]
        if tag not in {"meta", "br", "input"}:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open.pop() == tag

    def handle_data(self, data: str) -> None:
        inside = self.open[-1] if self.open else None
        kept = {"script": self.scripts, "style": self.styles}.get(inside or "", self.text)
        kept.append(data)


def _parse(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    collector.close()
    assert collector.open == []
    return collector


def test_the_page_shows_every_operation(ledger_document: JsonObject) -> None:
    page = render_docs_page(ledger_document)
    text = "".join(_parse(page).text)

    for path, item in ledger_document["paths"].items():
        for method, operation in item.items():
            assert f"id='op-{operation['operationId']}'" in page
            assert path in text
            assert method.upper() in text
            assert operation.get("summary", "").replace("`", "") in text  # `code` is markup
    assert "LedgerService" in text  # operations are grouped by tag


def test_the_page_shows_schemas_errors_and_codes(ledger_document: JsonObject) -> None:
    page = render_docs_page(ledger_document)
    text = " ".join(_parse(page).text)

    for name in ledger_document["components"]["schemas"]:
        assert f"id='schema-{name}'" in page
    assert "Problem" in text
    assert "INSUFFICIENT_FUNDS" in text
    assert "UnprocessableContent" in text
    assert "string or integer" in text  # int64 inputs
    assert "application/x-ndjson" in text


def test_the_page_is_self_contained(ledger_document: JsonObject) -> None:
    collector = _parse(render_docs_page(ledger_document))

    assert not {"link", "img", "iframe", "form"} & collector.tags
    for name, value in collector.attributes:
        if name in {"href", "src", "action"}:
            assert value.startswith("#"), (name, value)
    # A URL may be shown (a webhook's, in an example), never fetched: none in a style, a script
    # or an attribute.
    for code in (
        *collector.styles,
        *collector.scripts,
        *(value for _, value in collector.attributes),
    ):
        assert not re.search(r"https?://", code), code
    page = render_docs_page(ledger_document)
    assert "url(" not in page
    # One inline script, which makes no request of its own.
    (script,) = collector.scripts
    for request in ("fetch", "XMLHttpRequest", "sendBeacon", "WebSocket", "src", "href"):
        assert request not in script


def test_every_internal_link_has_a_target(ledger_document: JsonObject) -> None:
    collector = _parse(render_docs_page(ledger_document))
    targets = {value for name, value in collector.attributes if name == "id"}

    for name, value in collector.attributes:
        if name == "href":
            assert value.removeprefix("#") in targets, value


def test_all_text_is_escaped() -> None:
    hostile = "<script>alert('x')</script> & more"
    document: JsonObject = {
        "openapi": "3.1.0",
        "info": {"title": hostile, "version": "1", "description": hostile},
        "tags": [{"name": hostile, "description": hostile}],
        "paths": {
            "/x/{id}": {
                "get": {
                    "tags": [hostile],
                    "operationId": hostile,
                    "summary": hostile,
                    "description": hostile,
                    "parameters": [
                        {
                            "name": hostile,
                            "in": "path",
                            "required": True,
                            "description": hostile,
                            "schema": {"type": "string", "pattern": hostile},
                        }
                    ],
                    "responses": {"200": {"description": hostile}},
                }
            }
        },
        "components": {"schemas": {hostile: {"type": "object", "description": hostile}}},
    }
    page = render_docs_page(document)

    assert "<script>alert" not in page
    assert "&lt;script&gt;" in page
    _parse(page)


def test_descriptions_show_their_markdown(ledger_document: JsonObject) -> None:
    page = render_docs_page(ledger_document)
    assert "<code>idempotency_key</code>" in page
    assert "`" not in "".join(_parse(page).text)


def test_the_json_conventions_are_said_once(ledger_document: JsonObject) -> None:
    assert render_docs_page(ledger_document).count("64-bit integers are strings") == 1


def test_schemas_are_shown_by_their_proto_names(ledger_document: JsonObject) -> None:
    text = "".join(_parse(render_docs_page(ledger_document)).text)
    assert "-Input" not in text
    assert "AccountFlags (in requests)" in text


def test_each_operation_shows_its_example(ledger_document: JsonObject) -> None:
    page = render_docs_page(ledger_document)
    # PostTransfer's body and answer, escaped JSON in <pre>.
    assert "&quot;idempotency_key&quot;: &quot;top-up-1&quot;" in page
    operations = [op for path in ledger_document["paths"].values() for op in path.values()]
    assert page.count("Example answer") == len(operations)  # every operation, the stream too


def test_bounds_are_shown_only_where_a_rule_sets_them(ledger_document: JsonObject) -> None:
    text = "".join(_parse(render_docs_page(ledger_document)).text)
    assert "2147483647" not in text  # int32's own range (Entry.leg_index)
    assert "minimum 0; maximum 1000" in text  # page_size


def _policy(page: str) -> dict[str, str]:
    match = re.search(r"<meta http-equiv='Content-Security-Policy' content=\"([^\"]*)\">", page)
    assert match is not None
    directives = (part.strip().partition(" ") for part in match.group(1).split(";"))
    return {name: value for name, _, value in directives}


def test_the_page_has_a_token_field_kept_in_the_tab(ledger_document: JsonObject) -> None:
    page = render_docs_page(ledger_document)
    collector = _parse(page)

    assert ("id", "access-token") in collector.attributes
    assert ("type", "password") in collector.attributes  # not shown to whoever looks on
    assert ("autocomplete", "off") in collector.attributes
    (script,) = collector.scripts
    assert "sessionStorage" in script
    assert "localStorage" not in script  # the tab's storage only: gone when it closes
    assert "innerHTML" not in script  # nothing pasted is parsed as HTML
    # The browser itself keeps the page from sending anything anywhere, and runs no other
    # script than this one (by its hash).
    policy = _policy(page)
    assert policy["default-src"] == policy["connect-src"] == policy["form-action"] == "'none'"
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert policy["script-src"] == f"'sha256-{digest}'"


def test_example_requests_send_the_token_to_operations_that_need_one(
    ledger_document: JsonObject,
) -> None:
    page = render_docs_page(ledger_document)
    text = "".join(_parse(page).text)

    operations = [op for path in ledger_document["paths"].values() for op in path.values()]
    assert text.count("curl -X ") == len(operations)
    assert text.count('-H "Authorization: Bearer $TOKEN"') == len(operations)
    assert "<span class='token'>$TOKEN</span>" in page  # what the script fills in
    # PostTransfer's body, quoted for a shell.
    assert '-d \'{"idempotency_key":"top-up-1"' in text


def test_a_document_without_security_has_no_token_field_nor_header(
    library_document: JsonObject,
) -> None:
    page = render_docs_page(library_document)
    collector = _parse(page)

    assert ("id", "access-token") not in collector.attributes
    assert "Authorization" not in "".join(collector.text)
    assert "curl -X GET" in "".join(collector.text)


def test_example_bodies_are_quoted_for_a_shell_and_escaped_for_html() -> None:
    hostile = "it's </code><script>alert(1)</script>"
    document: JsonObject = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/x": {
                "post": {
                    "operationId": "X",
                    "security": [{"oauth2": ["ledger.write"]}],
                    "requestBody": {
                        "content": {"application/json": {"example": {"note": hostile}}}
                    },
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
        "components": {"securitySchemes": {"oauth2": {"type": "oauth2", "flows": {}}}},
    }
    page = render_docs_page(document)
    text = "".join(_parse(page).text)

    assert "<script>alert" not in page
    assert """-d '{"note":"it'\\''s </code><script>alert(1)</script>"}'""" in text
