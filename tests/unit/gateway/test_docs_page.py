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

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes += [(name, value or "") for name, value in attrs]
        if tag not in {"meta", "br"}:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open.pop() == tag

    def handle_data(self, data: str) -> None:
        self.text.append(data)


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

    assert not {"script", "link", "img", "iframe"} & collector.tags
    for name, value in collector.attributes:
        if name in {"href", "src"}:
            assert value.startswith("#"), (name, value)
    page = render_docs_page(ledger_document)
    assert not re.search(r"https?://", page)
    assert "url(" not in page


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

    assert "<script>" not in page
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
