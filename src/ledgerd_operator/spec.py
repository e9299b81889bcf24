"""The `Ledgerd` resource's spec, read into typed values with the CRD's defaults applied.

The API server validates the spec against the CRD's OpenAPI schema and fills its defaults; the
defaults are repeated here so that a resource written before a field existed (or served by an
API server that skipped defaulting) still reconciles to the same children.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GROUP = "ledgerd.dev"
VERSION = "v1alpha1"
PLURAL = "ledgerds"
KIND = "Ledgerd"
API_VERSION = f"{GROUP}/{VERSION}"

DEFAULT_SERVE_REPLICAS = 2
DEFAULT_WORKER_REPLICAS = 1
DEFAULT_DATABASE_KEY = "url"


@dataclass(frozen=True)
class Component:
    """One of the two long-running commands: its replica count and container resources."""

    replicas: int
    resources: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LedgerdSpec:
    image: str
    version: str
    image_pull_policy: str
    serve: Component
    worker: Component
    database_secret: str
    database_key: str
    events_publisher: str
    tls_secret: str | None
    env: Mapping[str, str]

    @property
    def image_ref(self) -> str:
        """The image every pod runs: the repository tagged with the version."""
        return f"{self.image}:{self.version}"


def _component(raw: Mapping[str, Any] | None, default_replicas: int) -> Component:
    raw = raw or {}
    return Component(
        replicas=int(raw.get("replicas", default_replicas)),
        resources=dict(raw.get("resources") or {}),
    )


def parse_spec(raw: Mapping[str, Any]) -> LedgerdSpec:
    """The spec of a `Ledgerd` resource (`raw` is what the API server stored)."""
    database = raw.get("database") or {}
    secret_ref = database.get("secretRef") or {}
    events = raw.get("events") or {}
    tls = raw.get("tls") or {}
    return LedgerdSpec(
        image=str(raw["image"]),
        version=str(raw["version"]),
        image_pull_policy=str(raw.get("imagePullPolicy", "IfNotPresent")),
        serve=_component(raw.get("serve"), DEFAULT_SERVE_REPLICAS),
        worker=_component(raw.get("worker"), DEFAULT_WORKER_REPLICAS),
        database_secret=str(secret_ref["name"]),
        database_key=str(secret_ref.get("key", DEFAULT_DATABASE_KEY)),
        events_publisher=str(events.get("publisher", "hub")),
        tls_secret=str(tls["secretName"]) if tls.get("secretName") else None,
        env={str(k): str(v) for k, v in (raw.get("env") or {}).items()},
    )
