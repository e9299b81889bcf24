"""The children of a `Ledgerd` resource, as the manifests the operator creates or patches.

Pure functions of the resource: the same resource always yields the same manifests, so the
reconciler can compare a child's recorded hash with the desired one and patch only on change.
"""

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledgerd_operator.spec import API_VERSION, KIND, LedgerdSpec

Manifest = dict[str, Any]

GRPC_PORT = 50051
HTTP_PORT = 8080
TLS_MOUNT = "/etc/ledgerd/tls"
MANAGED_BY = "ledgerd-operator"
# The hash of what the operator last applied to a child; a different desired hash means patch.
SPEC_HASH_ANNOTATION = "ledgerd.dev/spec-hash"
# On the pod template: a changed ConfigMap rolls the pods, which read it only when they start.
CONFIG_HASH_ANNOTATION = "ledgerd.dev/config-hash"
VERSION_LABEL = "ledgerd.dev/version"
_NAME_LIMIT = 63


@dataclass(frozen=True)
class Owner:
    """The `Ledgerd` resource the children belong to (garbage collected with it)."""

    name: str
    namespace: str
    uid: str


def _digest(value: object, length: int = 16) -> str:
    encoded = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:length]


def labels(owner: Owner, component: str) -> dict[str, str]:
    """The recommended labels (app.kubernetes.io/*): how kubectl and dashboards group pods."""
    return {
        "app.kubernetes.io/name": "ledgerd",
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def _selector(owner: Owner, component: str) -> dict[str, str]:
    # Selectors are immutable on a Deployment: only labels that never change for its life.
    return {
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/component": component,
    }


def _metadata(owner: Owner, name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": labels(owner, component),
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": owner.name,
                "uid": owner.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def with_spec_hash(manifest: Manifest) -> Manifest:
    """`manifest` with the hash of its content recorded in an annotation."""
    annotations = manifest["metadata"].setdefault("annotations", {})
    annotations.pop(SPEC_HASH_ANNOTATION, None)
    annotations[SPEC_HASH_ANNOTATION] = _digest(manifest)
    return manifest


def config_map_name(owner: Owner) -> str:
    return f"{owner.name}-config"


def server_name(owner: Owner) -> str:
    return f"{owner.name}-server"


def worker_name(owner: Owner) -> str:
    return f"{owner.name}-worker"


def migration_job_name(owner: Owner, spec: LedgerdSpec) -> str:
    """One Job per image: a new version (or image) is a new Job, so it migrates again.

    The hash keeps two versions that read the same once made DNS-safe (1.0+a, 1.0-a) apart.
    """
    readable = re.sub(r"[^a-z0-9-]+", "-", spec.version.lower()).strip("-")
    suffix = f"-migrate-{readable}-{_digest(spec.image_ref, 6)}"
    return f"{owner.name[: _NAME_LIMIT - len(suffix)]}{suffix}"[:_NAME_LIMIT].rstrip("-")


def config_data(owner: Owner, spec: LedgerdSpec) -> dict[str, str]:
    """The non-secret settings every ledgerd container reads (`LEDGERD_*`)."""
    scheme = "https" if spec.tls_secret is not None else "http"
    data = {
        # The tokens' issuer must be one name for every replica, and not the 0.0.0.0 the
        # listener binds: the Service's, unless `env` names the address clients use.
        "LEDGERD_TOKEN_ISSUER": f"{scheme}://{owner.name}.{owner.namespace}.svc:{HTTP_PORT}",
        # Inside a pod the listeners must face the pod's network, not its loopback.
        "LEDGERD_GRPC_ADDRESS": f"0.0.0.0:{GRPC_PORT}",
        "LEDGERD_HTTP_ADDRESS": f"0.0.0.0:{HTTP_PORT}",
        "LEDGERD_EVENTS_PUBLISHER": spec.events_publisher,
        # The worker relays the outbox; two relays in serve and worker would only contend.
        "LEDGERD_RELAY_IN_SERVE": "off",
    }
    if spec.tls_secret is not None:
        data["LEDGERD_TLS_CERT_FILE"] = f"{TLS_MOUNT}/tls.crt"
        data["LEDGERD_TLS_KEY_FILE"] = f"{TLS_MOUNT}/tls.key"
    data.update(spec.env)
    return data


def config_map(owner: Owner, spec: LedgerdSpec) -> Manifest:
    return with_spec_hash(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _metadata(owner, config_map_name(owner), "config"),
            "data": config_data(owner, spec),
        }
    )


def _container(
    owner: Owner, spec: LedgerdSpec, command: str, resources: Mapping[str, Any]
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": command,
        "image": spec.image_ref,
        "imagePullPolicy": spec.image_pull_policy,
        "args": [command],
        "envFrom": [{"configMapRef": {"name": config_map_name(owner)}}],
        "env": [
            {
                "name": "LEDGERD_DATABASE_URL",
                "valueFrom": {
                    "secretKeyRef": {"name": spec.database_secret, "key": spec.database_key}
                },
            }
        ],
        "resources": dict(resources),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    # The root filesystem is read-only; Python and the libraries may still want a /tmp.
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108
    if spec.tls_secret is not None:
        container["volumeMounts"].append({"name": "tls", "mountPath": TLS_MOUNT, "readOnly": True})
    return container


def _pod_spec(spec: LedgerdSpec, container: dict[str, Any], restart: str) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "restartPolicy": restart,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    if spec.tls_secret is not None:
        # The server re-reads the files (LEDGERD_TLS_RELOAD_INTERVAL_SECONDS), so a renewed
        # certificate reaches running pods without a restart.
        pod["volumes"].append({"name": "tls", "secret": {"secretName": spec.tls_secret}})
    return pod


def migration_job(owner: Owner, spec: LedgerdSpec) -> Manifest:
    container = _container(owner, spec, "migrate", spec.serve.resources)
    metadata = _metadata(owner, migration_job_name(owner, spec), "migrate")
    metadata["labels"][VERSION_LABEL] = _label_value(spec.version)
    return with_spec_hash(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": metadata,
            "spec": {
                # A migration that fails three times needs a person, not a fourth try.
                "backoffLimit": 2,
                "template": {
                    "metadata": {"labels": labels(owner, "migrate")},
                    "spec": _pod_spec(spec, container, "Never"),
                },
            },
        }
    )


def _label_value(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:_NAME_LIMIT].strip("-._")


def _deployment(
    owner: Owner, spec: LedgerdSpec, name: str, component: str, container: dict[str, Any]
) -> Manifest:
    server = component == "server"
    replicas = spec.serve.replicas if server else spec.worker.replicas
    # Servers: a new pod is ready before an old one goes, so capacity never drops. The worker:
    # the old one stops before the new one starts, so two relays never publish at once.
    strategy: dict[str, Any] = (
        {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
        if server
        else {"type": "Recreate"}
    )
    pod_labels = labels(owner, component) | {VERSION_LABEL: _label_value(spec.version)}
    return with_spec_hash(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata(owner, name, component),
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": _selector(owner, component)},
                "strategy": strategy,
                "template": {
                    "metadata": {
                        "labels": pod_labels,
                        "annotations": {CONFIG_HASH_ANNOTATION: _digest(config_data(owner, spec))},
                    },
                    "spec": _pod_spec(spec, container, "Always"),
                },
            },
        }
    )


def server_deployment(owner: Owner, spec: LedgerdSpec) -> Manifest:
    container = _container(owner, spec, "serve", spec.serve.resources)
    container["ports"] = [
        {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
        {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
    ]
    scheme = "HTTPS" if spec.tls_secret is not None else "HTTP"
    # /healthz and /readyz need no token, so the kubelet can probe with LEDGERD_AUTH=required.
    container["livenessProbe"] = {
        "httpGet": {"path": "/healthz", "port": "http", "scheme": scheme},
        "periodSeconds": 10,
        "failureThreshold": 3,
    }
    container["readinessProbe"] = {
        "httpGet": {"path": "/readyz", "port": "http", "scheme": scheme},
        "periodSeconds": 5,
        "failureThreshold": 2,
    }
    return _deployment(owner, spec, server_name(owner), "server", container)


def worker_deployment(owner: Owner, spec: LedgerdSpec) -> Manifest:
    # The worker serves no HTTP; it exits on fatal errors and the kubelet restarts it.
    container = _container(owner, spec, "worker", spec.worker.resources)
    return _deployment(owner, spec, worker_name(owner), "worker", container)


def service(owner: Owner) -> Manifest:
    return with_spec_hash(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata(owner, owner.name, "server"),
            "spec": {
                "selector": _selector(owner, "server"),
                "ports": [
                    {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"},
                    {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
                ],
            },
        }
    )


def disruption_budget(owner: Owner) -> Manifest:
    # maxUnavailable rather than minAvailable: with one replica a drain still proceeds.
    return with_spec_hash(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": _metadata(owner, server_name(owner), "server"),
            "spec": {
                "maxUnavailable": 1,
                "selector": {"matchLabels": _selector(owner, "server")},
            },
        }
    )
