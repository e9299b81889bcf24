import pytest

from ledgerd.gateway.path_template import (
    MalformedPathError,
    PathTemplateError,
    Segment,
    SegmentKind,
    Variable,
    check_raw_path,
    parse_path_template,
)

LITERAL, ONE, ANY = SegmentKind.LITERAL, SegmentKind.ONE, SegmentKind.ANY


def test_parses_literals_variables_and_a_verb() -> None:
    template = parse_path_template("/v1/ledgers/{ledger}/transfers/{transfer}:capture")

    assert template.segments == (
        Segment(LITERAL, "v1"),
        Segment(LITERAL, "ledgers"),
        Segment(ONE),
        Segment(LITERAL, "transfers"),
        Segment(ONE),
    )
    assert template.variables == (Variable(("ledger",), 2, 3), Variable(("transfer",), 4, 5))
    assert template.verb == "capture"


def test_parses_variable_patterns_and_nested_field_paths() -> None:
    template = parse_path_template("/v1/{book.name=shelves/*/books/*}/{rest=**}")

    assert [segment.kind for segment in template.segments] == [
        LITERAL,
        LITERAL,
        ONE,
        LITERAL,
        ONE,
        ANY,
    ]
    book, rest = template.variables
    assert (book.field_path, book.name, book.first, book.end) == (
        ("book", "name"),
        "book.name",
        1,
        5,
    )
    assert not template.is_single_segment(book)
    assert not template.is_single_segment(rest)
    assert template.verb is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "v1/ledgers",  # no leading slash
        "/",  # no segment
        "/v1//ledgers",  # empty segment
        "/v1/{ledger",  # unclosed variable
        "/v1/{a={b}}",  # nested variables
        "/v1/{1ledger}",  # not an identifier
        "/v1/**/tail",  # ** before the end
        "/v1/{x}/{x}",  # the same field twice
        "/v1/ledgers:",  # empty verb
        "/v1/a:b/c",  # a verb that is not last
        "/v1/a b",  # whitespace
    ],
)
def test_rejects_templates_outside_the_grammar(text: str) -> None:
    with pytest.raises(PathTemplateError, match="path template"):
        parse_path_template(text)


def test_matches_and_decodes_single_segment_variables_fully() -> None:
    template = parse_path_template("/v1/ledgers/{ledger}/accounts/{account}")

    assert template.match("/v1/ledgers/main/accounts/alice") == {
        "ledger": "main",
        "account": "alice",
    }
    # A single-segment variable is fully decoded, encoded slashes included.
    assert template.match("/v1/ledgers/main/accounts/a%2Fb%20%C3%A9") == {
        "ledger": "main",
        "account": "a/b é",
    }


@pytest.mark.parametrize(
    "path",
    [
        "/v1/ledgers/main/accounts",  # too short
        "/v1/ledgers/main/accounts/alice/extra",  # too long
        "/v1/ledgers//accounts/alice",  # empty variable segment
        "/v1/ledgers/main/accounts/",  # trailing slash: an empty last segment
        "/v1/ledger/main/accounts/alice",  # different literal
        "v1/ledgers/main/accounts/alice",  # not absolute
    ],
)
def test_does_not_match_other_shapes(path: str) -> None:
    assert parse_path_template("/v1/ledgers/{ledger}/accounts/{account}").match(path) is None


def test_multi_segment_variables_keep_encoded_slashes() -> None:
    template = parse_path_template("/v1/{name=shelves/*/books/*}")

    assert template.match("/v1/shelves/s1/books/b%2F2%20x") == {"name": "shelves/s1/books/b%2F2 x"}
    assert template.match("/v1/shelves/s1/books") is None
    assert template.match("/v1/racks/s1/books/b") is None


def test_double_wildcard_takes_the_rest_of_the_path_before_the_verb() -> None:
    template = parse_path_template("/v1/files/{path=**}:read")

    assert template.match("/v1/files/a/b/c.txt:read") == {"path": "a/b/c.txt"}
    assert template.match("/v1/files:read") == {"path": ""}
    assert template.match("/v1/files/a/b") is None  # no verb
    assert template.match("/v1/files/a//b:read") is None


def test_the_verb_is_only_a_literal_colon() -> None:
    with_verb = parse_path_template("/v1/accounts/{account}:freeze")
    without = parse_path_template("/v1/accounts/{account}")

    assert with_verb.match("/v1/accounts/acc:freeze") == {"account": "acc"}
    # Ids may contain ':'; an encoded colon is part of the id, never a verb separator.
    assert with_verb.match("/v1/accounts/acc%3Afreeze") is None
    assert without.match("/v1/accounts/acc%3Afreeze") == {"account": "acc:freeze"}
    assert without.match("/v1/accounts/acc:freeze") == {"account": "acc:freeze"}


def test_literals_match_their_percent_encoded_spelling() -> None:
    assert parse_path_template("/v1/ledgers").match("/v1/%6Cedgers") == {}


def test_specificity_prefers_literals_then_verbs() -> None:
    def key(text: str) -> tuple[tuple[int, ...], int]:
        return parse_path_template(text).specificity()

    assert key("/v1/things/special") < key("/v1/things/{thing}")
    assert key("/v1/things/{thing}:verb") < key("/v1/things/{thing}")
    assert key("/v1/things/{thing}") < key("/v1/things/{rest=**}")
    assert key("/v1/a/{b}") < key("/v1/{a}/b")  # the leftmost difference decides


def test_openapi_path_names_each_variable_once() -> None:
    assert (
        parse_path_template("/v1/ledgers/{ledger}/transfers/{transfer}:capture").openapi_path()
        == "/v1/ledgers/{ledger}/transfers/{transfer}:capture"
    )
    assert parse_path_template("/v1/{book.name=shelves/*/books/*}").openapi_path() == (
        "/v1/{book.name}"
    )
    with pytest.raises(PathTemplateError, match="wildcard outside a variable"):
        parse_path_template("/v1/*/things").openapi_path()


@pytest.mark.parametrize("path", ["/v1/%zz", "/v1/%C3", "/v1/%FF%FE", "/v1/a%2"])
def test_check_raw_path_rejects_bad_encodings(path: str) -> None:
    with pytest.raises(MalformedPathError):
        check_raw_path(path)


def test_check_raw_path_accepts_good_encodings() -> None:
    check_raw_path("/v1/a%2Fb/%C3%A9/x:y")
