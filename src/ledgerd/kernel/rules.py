r"""What a valid value looks like, written as data next to the checks that enforce it.

The kernel's checks (``check_id``, ``check_amount``, ``check_metadata``, ...) refuse what
breaks these rules, and they read the same constants the rules are made of; an API document
built from the rules therefore states what the server enforces, not a copy that can drift.
A context says which of its API fields follow which rule (the ledger's tables are in
``ledgerd.ledger.entrypoints.grpc.api_rules``); the REST gateway writes them into its OpenAPI
document as JSON Schema.

Patterns are anchored and use only syntax that means the same in Python's ``re`` and in
ECMA-262 (JSON Schema's dialect): explicit character classes, no ``\d`` or ``\w`` (Unicode in
Python), no lookaround.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TextRule:
    """A string matching ``pattern``, of at most ``max_length`` characters, not in ``excluded``."""

    pattern: str | None = None
    max_length: int | None = None
    # Values the pattern admits that the rule still refuses.
    excluded: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class IntegerRule:
    """An integer from ``minimum`` to ``maximum``, both included."""

    minimum: int
    maximum: int


@dataclass(frozen=True, slots=True)
class ListRule:
    """A list of ``min_items`` to ``max_items`` elements, each following ``items`` if given."""

    min_items: int = 0
    max_items: int | None = None
    items: TextRule | IntegerRule | None = None


@dataclass(frozen=True, slots=True)
class MapRule:
    """A string-to-string map of at most ``max_entries`` entries."""

    max_entries: int
    keys: TextRule
    values: TextRule


FieldRule = TextRule | IntegerRule | ListRule | MapRule


# Rules across the fields of one record. A field is "set" when it holds anything but its zero
# value (false, 0, "", nothing): proto3 cannot tell that value from an absent field.


@dataclass(frozen=True, slots=True)
class AtMostOneSet:
    """Of ``fields``, at most one may be set."""

    fields: tuple[str, ...]

    def holds(self, values: Mapping[str, object]) -> bool:
        return sum(1 for name in self.fields if values.get(name)) <= 1


@dataclass(frozen=True, slots=True)
class SetOnlyWith:
    """``field`` may be set only when one of ``any_of`` is set too."""

    field: str
    any_of: tuple[str, ...]

    def holds(self, values: Mapping[str, object]) -> bool:
        return not values.get(self.field) or any(values.get(name) for name in self.any_of)


MessageRule = AtMostOneSet | SetOnlyWith


@dataclass(frozen=True, slots=True)
class ApiRules:
    """An API's rules, per field and per message.

    Fields by full name (``ledgerd.v1.Leg.amount``), messages too (``ledgerd.v1.AccountFlags``).
    """

    fields: Mapping[str, FieldRule] = field(default_factory=dict)
    messages: Mapping[str, tuple[MessageRule, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ApiExample:
    """One call of an API operation as its documentation shows it, and a test replays it.

    ``path`` is the URL path with its query; ``request`` the JSON body (None: no body);
    ``response`` the JSON answer, or the lines of a streamed one (NDJSON).
    """

    method: str
    path: str
    response: Mapping[str, object] | Sequence[Mapping[str, object]]
    request: Mapping[str, object] | None = None
