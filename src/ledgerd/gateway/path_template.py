"""Path templates of `google.api.http` rules: parsed once, then matched against request paths.

The grammar, from google/api/http.proto::

    Template  = "/" Segments [ Verb ] ;
    Segments  = Segment { "/" Segment } ;
    Segment   = "*" | "**" | LITERAL | Variable ;
    Variable  = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb      = ":" LITERAL ;

Matching works on the *raw* (still percent-encoded) URL path: splitting on "/" must happen
before decoding, or an id containing an encoded slash (``a%2Fb``) would become two segments,
and a ``:verb`` suffix is recognised only as a literal ``:`` so that ``acc%3Afreeze`` stays an
account id. Values are decoded after matching, following http.proto: a single-segment
variable is fully decoded; a multi-segment one keeps ``%2F`` encoded so that its own ``/``
separators stay unambiguous.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import unquote

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Anything but the grammar's own punctuation; URL paths carry nothing else unencoded.
_LITERAL = re.compile(r"[^/{}*=:?#\s]+")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ENCODED_SLASH = re.compile(r"(%2[Ff])")


class PathTemplateError(ValueError):
    """A path template that does not follow the grammar."""


class MalformedPathError(ValueError):
    """A request path that is not valid percent-encoded UTF-8."""


class SegmentKind(enum.Enum):
    LITERAL = "literal"
    ONE = "*"  # exactly one non-empty path segment
    ANY = "**"  # zero or more segments; only ever the template's last segment


@dataclass(frozen=True, slots=True)
class Segment:
    kind: SegmentKind
    literal: str = ""


@dataclass(frozen=True, slots=True)
class Variable:
    """A ``{field.path=...}`` capture over ``segments[first:end]`` of its template."""

    field_path: tuple[str, ...]
    first: int
    end: int

    @property
    def name(self) -> str:
        """The dotted field path, as it appears in the template and in query parameters."""
        return ".".join(self.field_path)


@dataclass(frozen=True, slots=True)
class PathTemplate:
    text: str
    segments: tuple[Segment, ...]
    variables: tuple[Variable, ...]
    verb: str | None

    def is_single_segment(self, variable: Variable) -> bool:
        """Whether ``variable`` captures exactly one segment (``{x}`` or ``{x=*}``)."""
        captured = self.segments[variable.first : variable.end]
        return len(captured) == 1 and captured[0].kind is SegmentKind.ONE

    def match(self, raw_path: str) -> dict[str, str] | None:
        """The decoded variable values by name if ``raw_path`` matches, else None.

        ``raw_path`` is the percent-encoded path without the query string; check it first
        with :func:`check_raw_path`, which is what makes decoding here infallible.
        """
        if not raw_path.startswith("/"):
            return None
        rest = raw_path[1:]
        if self.verb is not None:
            suffix = f":{self.verb}"
            if not rest.endswith(suffix):
                return None
            rest = rest[: -len(suffix)]
        parts = rest.split("/")
        spans = self._spans(parts)
        if spans is None:
            return None
        values: dict[str, str] = {}
        for variable in self.variables:
            start, end = spans[variable.first][0], spans[variable.end - 1][1]
            captured = parts[start:end]
            if self.is_single_segment(variable):
                values[variable.name] = unquote(captured[0], errors="strict")
            else:
                values[variable.name] = "/".join(_decode_keeping_slashes(p) for p in captured)
        return values

    def _spans(self, parts: list[str]) -> list[tuple[int, int]] | None:
        """Which ``parts`` each template segment covers, or None when they do not fit."""
        fixed = len(self.segments)
        ends_open = fixed > 0 and self.segments[-1].kind is SegmentKind.ANY
        if len(parts) < (fixed - 1 if ends_open else fixed) or (
            not ends_open and len(parts) > fixed
        ):
            return None
        spans: list[tuple[int, int]] = []
        for index, segment in enumerate(self.segments):
            if segment.kind is SegmentKind.ANY:
                tail = parts[index:]
                if any(not part for part in tail):
                    return None
                spans.append((index, len(parts)))
                continue
            part = parts[index]
            if segment.kind is SegmentKind.ONE and not part:
                return None
            if segment.kind is SegmentKind.LITERAL and (
                unquote(part, errors="strict") != segment.literal
            ):
                return None
            spans.append((index, index + 1))
        return spans

    def specificity(self) -> tuple[tuple[int, ...], int]:
        """A sort key: templates that sort first win when several match one path.

        Segment by segment from the left, a literal beats ``*`` which beats ``**``; then a
        template with a ``:verb`` beats one without (whose last variable would otherwise
        swallow the verb, as ids may contain ``:``).
        """
        rank = {SegmentKind.LITERAL: 0, SegmentKind.ONE: 1, SegmentKind.ANY: 2}
        return tuple(rank[segment.kind] for segment in self.segments), int(self.verb is None)

    def openapi_path(self) -> str:
        """The template as an OpenAPI path: each variable becomes ``{field.path}``."""
        pieces: list[str] = []
        index = 0
        by_first = {variable.first: variable for variable in self.variables}
        while index < len(self.segments):
            variable = by_first.get(index)
            if variable is not None:
                pieces.append(f"{{{variable.name}}}")
                index = variable.end
                continue
            segment = self.segments[index]
            if segment.kind is not SegmentKind.LITERAL:
                msg = f"{self.text}: a wildcard outside a variable has no OpenAPI form"
                raise PathTemplateError(msg)
            pieces.append(segment.literal)
            index += 1
        verb = f":{self.verb}" if self.verb is not None else ""
        return "/" + "/".join(pieces) + verb


def check_raw_path(raw_path: str) -> None:
    """Raise :class:`MalformedPathError` unless every ``%`` escape is valid, UTF-8 included."""
    if _BAD_PERCENT.search(raw_path):
        raise MalformedPathError(f"bad percent-encoding in {raw_path!r}")
    try:
        unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        raise MalformedPathError(f"{raw_path!r} does not decode as UTF-8") from None


def _decode_keeping_slashes(part: str) -> str:
    pieces = _ENCODED_SLASH.split(part)
    # split() with a capturing group alternates text and separators; keep separators as sent.
    return "".join(
        piece if index % 2 else unquote(piece, errors="strict")
        for index, piece in enumerate(pieces)
    )


def parse_path_template(text: str) -> PathTemplate:
    """Parse ``text`` or raise :class:`PathTemplateError` saying where it goes wrong."""
    return _Parser(text).template()


class _Parser:
    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._segments: list[Segment] = []
        self._variables: list[Variable] = []

    def template(self) -> PathTemplate:
        self._expect("/")
        self._parse_segments(inside_variable=False)
        verb = None
        if self._take(":"):
            verb = self._literal()
        if self._pos != len(self._text):
            self._fail("unexpected text")
        for segment in self._segments[:-1]:
            if segment.kind is SegmentKind.ANY:
                self._fail("'**' must be the last segment")
        names = [variable.name for variable in self._variables]
        if len(set(names)) != len(names):
            self._fail("a field is bound twice")
        return PathTemplate(self._text, tuple(self._segments), tuple(self._variables), verb)

    def _parse_segments(self, *, inside_variable: bool) -> None:
        self._parse_segment(inside_variable=inside_variable)
        while self._take("/"):
            self._parse_segment(inside_variable=inside_variable)

    def _parse_segment(self, *, inside_variable: bool) -> None:
        if self._take("**"):
            self._segments.append(Segment(SegmentKind.ANY))
        elif self._take("*"):
            self._segments.append(Segment(SegmentKind.ONE))
        elif self._peek("{"):
            if inside_variable:
                self._fail("variables cannot nest")
            self._parse_variable()
        else:
            self._segments.append(Segment(SegmentKind.LITERAL, self._literal()))

    def _parse_variable(self) -> None:
        self._expect("{")
        field_path = [self._match(_IDENT, "a field name")]
        while self._take("."):
            field_path.append(self._match(_IDENT, "a field name"))
        first = len(self._segments)
        if self._take("="):
            self._parse_segments(inside_variable=True)
        else:
            self._segments.append(Segment(SegmentKind.ONE))
        self._expect("}")
        self._variables.append(Variable(tuple(field_path), first, len(self._segments)))

    def _literal(self) -> str:
        return self._match(_LITERAL, "a literal")

    def _match(self, pattern: re.Pattern[str], what: str) -> str:
        found = pattern.match(self._text, self._pos)
        if found is None:
            self._fail(f"expected {what}")
        self._pos = found.end()
        return found.group()

    def _peek(self, token: str) -> bool:
        return self._text.startswith(token, self._pos)

    def _take(self, token: str) -> bool:
        if self._peek(token):
            self._pos += len(token)
            return True
        return False

    def _expect(self, token: str) -> None:
        if not self._take(token):
            self._fail(f"expected {token!r}")

    def _fail(self, problem: str) -> NoReturn:
        msg = f"path template {self._text!r}, at offset {self._pos}: {problem}"
        raise PathTemplateError(msg)
