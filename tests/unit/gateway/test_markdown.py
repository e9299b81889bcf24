"""The Markdown subset descriptions are written in, as the docs page shows it."""

import pytest

from ledgerd.gateway.markdown import inline_html, markdown_html


def test_backticks_are_code() -> None:
    assert markdown_html("Send `idempotency_key` twice.") == (
        "<p>Send <code>idempotency_key</code> twice.</p>"
    )


def test_blank_lines_separate_paragraphs_and_single_newlines_join_lines() -> None:
    assert markdown_html("One line\nwrapped.\n\nAnother.") == (
        "<p>One line\nwrapped.</p><p>Another.</p>"
    )


def test_dash_lines_are_a_list_with_continuation_lines() -> None:
    text = "Flags:\n- `a`: first,\n  wrapped\n- b"
    assert markdown_html(text) == (
        "<p>Flags:</p><ul><li><code>a</code>: first,\n  wrapped</li><li>b</li></ul>"
    )


def test_emphasis_is_strong() -> None:
    assert markdown_html("**never** twice") == "<p><strong>never</strong> twice</p>"


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        "`<img src=x onerror=alert(1)>`",
        "**<b>**",
        "- <i>x</i>",
        "[link](javascript:alert(1))",
    ],
)
def test_everything_else_is_escaped_text(hostile: str) -> None:
    html = markdown_html(hostile)
    assert "<script" not in html
    assert "<img" not in html
    assert "<b>" not in html
    assert "<i>" not in html
    assert "href" not in html
    assert "&lt;" in html or "javascript" in html


def test_nothing_renders_as_nothing() -> None:
    assert markdown_html("") == ""
    assert markdown_html("\n\n") == ""


def test_a_summary_is_inline_markup_only() -> None:
    assert inline_html("Capture `amount` <now>") == "Capture <code>amount</code> &lt;now&gt;"
