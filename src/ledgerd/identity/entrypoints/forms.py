"""Reading ``application/x-www-form-urlencoded`` bodies and query strings the strict way.

RFC 6749 §3.1/§3.2: a parameter sent without a value is as if omitted, and a parameter must not
be included more than once; anything ambiguous is refused rather than guessed at, since the
parameters decide who gets a token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import parse_qsl

# No OAuth request comes near it (a code exchange is ~300 bytes); a login form with a long
# state parameter stays far below.
MAX_FORM_BYTES: Final = 16 * 1024
MAX_FIELDS: Final = 32
_BROKEN_ESCAPE: Final = re.compile(rb"%(?![0-9A-Fa-f]{2})")


class FormError(ValueError):
    """The body or query cannot be read as one value per name; the message says why."""


def parse_form(raw: bytes, *, text: bool = False) -> Mapping[str, str]:
    """The parameters, one value each; blank ones dropped.

    With ``text`` (a login form's username and password) values may be any UTF-8 text but
    control characters; otherwise (protocol parameters: RFC 6749 Appendix A makes them all
    printable ASCII) only printable ASCII.
    """
    if len(raw) > MAX_FORM_BYTES:
        raise FormError("the form is too large")
    if not raw.isascii():
        raise FormError("a form is percent-encoded ASCII")
    if _BROKEN_ESCAPE.search(raw):
        # parse_qsl would keep "%ZZ" as those three characters: a value nobody meant.
        raise FormError("the form has a malformed percent-escape")
    try:
        pairs = parse_qsl(
            raw.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=bool(raw),
            encoding="utf-8" if text else "ascii",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise FormError("a parameter is not valid " + ("UTF-8" if text else "ASCII")) from None
    except ValueError:
        raise FormError("the form is malformed") from None
    parameters: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if name in seen:
            raise FormError(f"parameter {_shown(name)} is repeated")
        seen.add(name)
        if not _acceptable(name, text=False) or not _acceptable(value, text=text):
            raise FormError(f"parameter {_shown(name)} has characters not allowed")
        if value:
            parameters[name] = value
    return parameters


def _acceptable(value: str, *, text: bool) -> bool:
    if text:
        return value.isprintable()
    return all(" " <= char <= "~" for char in value)


def _shown(name: str) -> str:
    # A name echoed in an error is short printable ASCII, or not echoed at all.
    printable = len(name) <= 40 and all(" " < char <= "~" for char in name)  # noqa: PLR2004
    return repr(name) if printable else "(unprintable)"
