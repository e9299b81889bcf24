"""One pass of the control loop: make a `Ledgerd`'s children match its spec, report status.

The order is the point: the migration Job of the wanted version must have succeeded before the
Deployments run that version. Until then they keep running the version they had (the one
recorded in status.deployed), so a failed migration leaves the old version serving and the
resource Degraded, never a new binary on an old schema.
"""

import dataclasses
from collections.abc import Mapping
from enum import Enum
from typing import Any

from ledgerd_operator import conditions, manifests
from ledgerd_operator.conditions import Condition
from ledgerd_operator.kube_api import KubeApi
from ledgerd_operator.manifests import Manifest, Owner
from ledgerd_operator.spec import LedgerdSpec


class Migration(Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def migration_state(job: Mapping[str, Any] | None) -> Migration:
    """Where the migration Job stands (a Job just created has no status yet: running)."""
    status = (job or {}).get("status") or {}
    if int(status.get("succeeded") or 0) > 0:
        return Migration.SUCCEEDED
    failed = conditions.condition_of(status, "Failed")
    if failed is not None and failed.get("status") == "True":
        return Migration.FAILED
    return Migration.RUNNING


async def apply(api: KubeApi, manifest: Manifest) -> Manifest:
    """Create the object, or patch it when what was last applied differs from `manifest`.

    Drift in fields the operator does not own (replicas scaled by an autoscaler aside, which it
    does own) is left alone; a deleted object is created again.
    """
    meta = manifest["metadata"]
    current = await api.get(
        manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"]
    )
    if current is None:
        await api.create(manifest)
        return manifest
    applied = ((current.get("metadata") or {}).get("annotations") or {}).get(
        manifests.SPEC_HASH_ANNOTATION
    )
    if applied != meta["annotations"][manifests.SPEC_HASH_ANNOTATION]:
        await api.patch(manifest)
    return current


def _rolled_back_spec(spec: LedgerdSpec, deployed: Mapping[str, Any]) -> LedgerdSpec | None:
    # The spec as it was when the running version was rolled out: image and version from status.
    if not deployed.get("image") or not deployed.get("version"):
        return None
    return dataclasses.replace(spec, image=str(deployed["image"]), version=str(deployed["version"]))


def _rollout(deployment: Mapping[str, Any] | None, replicas: int) -> tuple[bool, bool, bool]:
    """(available, complete, stalled) for the server Deployment as its controller reports it."""
    if deployment is None:
        return False, False, False
    status = deployment.get("status") or {}
    available = int(status.get("availableReplicas") or 0) >= min(replicas, 1) and replicas > 0
    complete = (
        int(status.get("updatedReplicas") or 0) >= replicas
        and int(status.get("availableReplicas") or 0) >= replicas
        and int(status.get("observedGeneration") or 0)
        >= int((deployment.get("metadata") or {}).get("generation") or 0)
    )
    progressing = conditions.condition_of(status, "Progressing")
    stalled = progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded"
    return available, complete, stalled


async def reconcile(
    api: KubeApi,
    owner: Owner,
    spec: LedgerdSpec,
    generation: int | None,
    status: Mapping[str, Any],
) -> dict[str, Any]:
    """Apply the children, then return the resource's new status block."""
    await apply(api, manifests.config_map(owner, spec))
    await apply(api, manifests.service(owner))
    await apply(api, manifests.disruption_budget(owner))

    job = manifests.migration_job(owner, spec)
    found = await api.get("batch/v1", "Job", owner.namespace, job["metadata"]["name"])
    if found is None:
        # A Job's pod template is immutable: a new version gets a new Job, never a patch.
        await api.create(job)
    migration = migration_state(found)

    deployed: Mapping[str, Any] = status.get("deployed") or {}
    rollout_spec = spec if migration is Migration.SUCCEEDED else _rolled_back_spec(spec, deployed)
    server = None
    if rollout_spec is not None:
        server = await apply(api, manifests.server_deployment(owner, rollout_spec))
        await apply(api, manifests.worker_deployment(owner, rollout_spec))
        deployed = {"image": rollout_spec.image, "version": rollout_spec.version}

    available, complete, stalled = _rollout(server, spec.serve.replicas)
    version = spec.version
    found_conditions = [
        _migrated(migration, version, job["metadata"]["name"]),
        Condition(
            conditions.AVAILABLE,
            status=available,
            reason="MinimumReplicasAvailable" if available else "NoReplicasAvailable",
            message="the server has ready replicas" if available else "no server replica is ready",
        ),
        _progressing(migration, complete=complete, version=version),
        _degraded(migration, stalled=stalled, job=job["metadata"]["name"]),
    ]
    return {
        "observedGeneration": generation,
        "deployed": dict(deployed),
        "migrationJob": job["metadata"]["name"],
        "conditions": conditions.render(
            found_conditions, status.get("conditions") or [], generation
        ),
    }


def _true(kind: str, reason: str, message: str) -> Condition:
    return Condition(kind, status=True, reason=reason, message=message)


def _false(kind: str, reason: str, message: str) -> Condition:
    return Condition(kind, status=False, reason=reason, message=message)


def _migrated(migration: Migration, version: str, job: str) -> Condition:
    if migration is Migration.SUCCEEDED:
        return _true(conditions.MIGRATED, "MigrationSucceeded", f"{version} migrated")
    if migration is Migration.FAILED:
        return _false(conditions.MIGRATED, "MigrationFailed", f"Job {job} failed; see its pod logs")
    return _false(conditions.MIGRATED, "MigrationRunning", f"Job {job} is migrating")


def _progressing(migration: Migration, *, complete: bool, version: str) -> Condition:
    if migration is Migration.FAILED:
        return _false(conditions.PROGRESSING, "MigrationFailed", "rollout held back")
    if migration is Migration.RUNNING:
        return _true(conditions.PROGRESSING, "Migrating", f"migrating to {version}")
    if not complete:
        return _true(conditions.PROGRESSING, "RollingOut", f"rolling out {version}")
    return _false(conditions.PROGRESSING, "RolloutComplete", f"{version} rolled out")


def _degraded(migration: Migration, *, stalled: bool, job: str) -> Condition:
    if migration is Migration.FAILED:
        return _true(
            conditions.DEGRADED,
            "MigrationFailed",
            f"Job {job} failed; the previous version keeps serving",
        )
    if stalled:
        return _true(
            conditions.DEGRADED, "RolloutStalled", "the server rollout passed its deadline"
        )
    return _false(conditions.DEGRADED, "AsExpected", "")
