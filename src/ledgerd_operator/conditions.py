"""Status conditions of a `Ledgerd` resource, in Kubernetes' condition shape.

A condition keeps its lastTransitionTime while its status stays the same, so that time says
when it last changed, not when the operator last looked.
"""

from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime
from typing import Any

MIGRATED = "Migrated"
AVAILABLE = "Available"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"


@dataclass(frozen=True)
class Condition:
    type: str
    _: KW_ONLY
    status: bool
    reason: str
    message: str


def _now() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render(
    conditions: Iterable[Condition],
    previous: Iterable[Mapping[str, Any]],
    generation: int | None,
) -> list[dict[str, Any]]:
    """The conditions as status entries, carrying over unchanged transition times."""
    before = {str(entry.get("type")): entry for entry in previous}
    rendered = []
    for condition in conditions:
        status = "True" if condition.status else "False"
        old = before.get(condition.type, {})
        changed = old.get("status") != status
        entry: dict[str, Any] = {
            "type": condition.type,
            "status": status,
            "reason": condition.reason,
            "message": condition.message,
            "lastTransitionTime": _now() if changed else old.get("lastTransitionTime", _now()),
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        rendered.append(entry)
    return rendered


def condition_of(status: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any] | None:
    """The condition of that type in a status block (a Job's, a Deployment's), if any."""
    for entry in (status or {}).get("conditions") or []:
        if entry.get("type") == kind:
            found: Mapping[str, Any] = entry
            return found
    return None
