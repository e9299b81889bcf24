"""The small Markdown subset API descriptions use, as safe HTML for the docs page.

Descriptions come from .proto comments, written for people reading the contract: paragraphs
split by blank lines, ``- `` list items (lines indented under one continue it), ```code```
spans and ``**strong**``. Only that is rendered. Everything is escaped first and the markup is
added around escaped text, so no tag, attribute or link a description contains can reach the
page as markup; anything else (links, headings) stays as the text it was written as.
"""

from __future__ import annotations

import re
from html import escape

_CODE = re.compile(r"`([^`\n]+)`")
_STRONG = re.compile(r"\*\*([^*\n]+)\*\*")
_ITEM = "- "


def markdown_html(text: str) -> str:
    """``text`` as HTML paragraphs and lists; the empty string for blank text."""
    blocks = [block for block in re.split(r"\n[ \t]*\n", text.strip()) if block.strip()]
    return "".join(_block(block) for block in blocks)


def _block(block: str) -> str:
    lead: list[str] = []
    items: list[list[str]] = []
    for line in block.split("\n"):
        if line.startswith(_ITEM):
            items.append([line.removeprefix(_ITEM)])
        elif items:
            items[-1].append(line)
        else:
            lead.append(line)
    parts = [f"<p>{_inline(chr(10).join(lead))}</p>"] if lead else []
    if items:
        listed = "".join(f"<li>{_inline(chr(10).join(item))}</li>" for item in items)
        parts.append(f"<ul>{listed}</ul>")
    return "".join(parts)


def inline_html(text: str) -> str:
    """One line of ``text`` (a summary) with its code and strong spans, escaped."""
    return _inline(text)


def _inline(text: str) -> str:
    escaped = escape(text, quote=False)
    # The spans are found in escaped text, so what they wrap is escaped already.
    with_code = _CODE.sub(r"<code>\1</code>", escaped)
    return _STRONG.sub(r"<strong>\1</strong>", with_code)
