r"""How integers and timestamps may be written in a request: one definition for two readers.

The proto3 JSON mapping lets a client send any integer as a JSON string and a timestamp as
an RFC 3339 string, but protobuf's Python parser reads more than that: integers through
``int()`` (``"+5"``, ``"1_000"``, ``" 5"`` with a tab, Arabic-Indic digits) and timestamps
through a lenient scanner (one-digit months, full-width digits, a ``+24:00`` offset). The
gateway refuses what these patterns do not match before protobuf sees it (see
:mod:`ledgerd.gateway.transcoding`), and the OpenAPI document states the same patterns (see
:mod:`ledgerd.gateway.json_schema`), so the two cannot disagree.

Every pattern here is anchored and uses only syntax that means the same in Python's ``re``
and in ECMA-262, the regex dialect of JSON Schema: explicit ``[0-9]`` rather than ``\d``
(which matches any Unicode digit in Python), non-capturing groups, no lookaround.
"""

from __future__ import annotations

import re

# A decimal integer as the mapping prints one: no sign but '-', no leading zeros, no "-0".
INTEGER_TEXT = re.compile(r"^(?:0|-?[1-9][0-9]*)$")

_DATE = r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
_OFFSET = r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
# RFC 3339 date-time as protobuf's Timestamp reads it: upper-case T and Z, at most nanoseconds,
# no leap second (a Timestamp has none). Calendar checks (30 February, years 1 to 9999 after
# the offset is applied) are left to the parser, which refuses those with a 400 as well.
TIMESTAMP_TEXT = re.compile(rf"^{_DATE}T{_TIME}{_OFFSET}$")


def decimal_range_pattern(low: int, high: int) -> str:
    """An anchored regex matching exactly the :data:`INTEGER_TEXT` spellings of low..high.

    JSON Schema's ``minimum`` and ``maximum`` bind numbers only; a 64-bit integer sent as a
    string needs its range said as a pattern, which this writes digit by digit.
    """
    if low > high:
        msg = f"empty range {low}..{high}"
        raise ValueError(msg)
    alternatives: list[str] = []
    if low < 0:
        # -1 down to low: the same digits as 1..-low, after a '-'.
        negatives = _non_negative(max(1, -high), -low)
        alternatives.append("-(?:" + "|".join(negatives) + ")")
    if high >= 0:
        alternatives.extend(_non_negative(max(0, low), high))
    return "^(?:" + "|".join(alternatives) + ")$"


def _non_negative(low: int, high: int) -> list[str]:
    """Alternatives matching the canonical decimals of low..high (0 <= low <= high)."""
    alternatives: list[str] = []
    if low == 0:
        alternatives.append("0")
        low = 1
    if low > high:
        return alternatives
    full_lengths: list[int] = []  # lengths whose every number is in range, merged below
    for length in range(len(str(low)), len(str(high)) + 1):
        first, last = max(low, 10 ** (length - 1)), min(high, 10**length - 1)
        if (first, last) == (10 ** (length - 1), 10**length - 1):
            full_lengths.append(length)
            continue
        alternatives.extend(_flush_full_lengths(full_lengths))
        alternatives.extend(_same_length(str(first), str(last)))
    alternatives.extend(_flush_full_lengths(full_lengths))
    return alternatives


def _flush_full_lengths(lengths: list[int]) -> list[str]:
    """``[1-9][0-9]{m,n}`` for consecutive lengths m+1..n+1 (emptying ``lengths``)."""
    if not lengths:
        return []
    shortest, longest = lengths[0] - 1, lengths[-1] - 1
    lengths.clear()
    return ["[1-9]" + _any_digits(shortest, longest)]


def _same_length(first: str, last: str) -> list[str]:
    """Alternatives for the digit strings from ``first`` to ``last``, both of one length."""
    if first == last:
        return [first]
    common = 0
    while first[common] == last[common]:
        common += 1
    prefix, first, last = first[:common], first[common:], last[common:]
    rest = len(first) - 1
    if rest == 0:
        return [prefix + _digits(first[0], last[0])]
    any_rest = _any_digits(rest, rest)
    alternatives: list[str] = []
    # From `first` up to its leading digit followed by nines ...
    low_full = int(first[0])
    if first[1:] != "0" * rest:
        alternatives += [prefix + first[0] + tail for tail in _same_length(first[1:], "9" * rest)]
        low_full += 1
    # ... then whole blocks of leading digits ...
    high_full = int(last[0])
    upper: list[str] = []
    if last[1:] != "9" * rest:
        upper = [prefix + last[0] + tail for tail in _same_length("0" * rest, last[1:])]
        high_full -= 1
    if low_full <= high_full:
        alternatives.append(prefix + _digits(str(low_full), str(high_full)) + any_rest)
    # ... and from the last leading digit followed by zeros up to `last`.
    return alternatives + upper


def _any_digits(fewest: int, most: int) -> str:
    if most == 0:
        return ""
    if fewest == most:
        return "[0-9]" if most == 1 else f"[0-9]{{{most}}}"
    return f"[0-9]{{{fewest},{most}}}"


def _digits(low: str, high: str) -> str:
    return low if low == high else f"[{low}-{high}]"
