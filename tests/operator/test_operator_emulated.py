"""The operator's life cycle of a `Ledgerd`, against kmock's Kubernetes API emulator.

See conftest.py: the emulator runs no controllers, so each test plays the Job and Deployment
controllers by patching status, the way the real ones would report.
"""

from collections.abc import Mapping
from typing import Any

import pytest

from tests.operator.conftest import (
    BUDGETS,
    CONFIG_MAPS,
    DEPLOYMENTS,
    JOBS,
    LEDGERDS,
    SERVICES,
    Cluster,
    ledgerd,
)

# A test that ends while a resync pass is under way stops kopf with that timer still running;
# kopf warns that it abandons it (the pass is harmless: the emulator is about to go too).
pytestmark = pytest.mark.filterwarnings("ignore:.*did not exit in time:ResourceWarning")

NAME = "books"
SERVER = f"{NAME}-server"
WORKER = f"{NAME}-worker"
SUCCEEDED = {"status": {"succeeded": 1}}
FAILED = {
    "status": {"failed": 3, "conditions": [{"type": "Failed", "status": "True"}]},
}


def _image(cluster: Cluster, deployment: str) -> str | None:
    obj = cluster.get(DEPLOYMENTS, deployment)
    if obj is None:
        return None
    image: str = obj["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


def _observed_generation(cluster: Cluster) -> int | None:
    status = (cluster.get(LEDGERDS, NAME) or {}).get("status") or {}
    generation: int | None = status.get("observedGeneration")
    return generation


def _one_job(cluster: Cluster, version: str) -> str:
    jobs = [
        name for name in cluster.names(JOBS) if f"-migrate-{version.replace('.', '-')}-" in name
    ]
    assert len(jobs) == 1, cluster.names(JOBS)
    return jobs[0]


async def _migrate(cluster: Cluster, version: str, outcome: Mapping[str, Any]) -> str:
    await cluster.until(
        f"a migration Job for {version}",
        lambda: any(f"-migrate-{version.replace('.', '-')}-" in n for n in cluster.names(JOBS)),
    )
    job = _one_job(cluster, version)
    await cluster.patch(JOBS, job, outcome)
    return job


async def _deployed(cluster: Cluster, version: str) -> None:
    await _migrate(cluster, version, SUCCEEDED)
    image = f"registry.example/ledgerd:{version}"
    await cluster.until(
        f"both Deployments at {version}",
        lambda: _image(cluster, SERVER) == image and _image(cluster, WORKER) == image,
    )


async def test_create_migrates_before_the_deployments_roll_out(cluster: Cluster) -> None:
    await cluster.create(LEDGERDS, ledgerd(NAME, "1.0.0"))
    job_name = await _migrate(cluster, "1.0.0", {"status": {"active": 1}})

    # The Job runs `ledgerd migrate` from the same image, with the database URL from the secret.
    job = cluster.get(JOBS, job_name)
    assert job is not None
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["migrate"]
    assert container["image"] == "registry.example/ledgerd:1.0.0"
    assert container["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "ledgerd-db", "key": "url"}
    await cluster.until("Migrated=False", lambda: cluster.condition_is(NAME, "Migrated", "False"))
    assert cluster.condition_is(NAME, "Progressing", "True")
    # While the migration runs there is nothing to roll out.
    assert cluster.names(DEPLOYMENTS) == set()
    assert cluster.names(SERVICES) == {NAME}
    assert cluster.names(CONFIG_MAPS) == {f"{NAME}-config"}
    assert cluster.names(BUDGETS) == {SERVER}

    await cluster.patch(JOBS, job_name, SUCCEEDED)
    await cluster.until("Deployments", lambda: cluster.names(DEPLOYMENTS) == {SERVER, WORKER})
    await cluster.until("Migrated=True", lambda: cluster.condition_is(NAME, "Migrated", "True"))
    server = cluster.get(DEPLOYMENTS, SERVER)
    assert server is not None
    serve = server["spec"]["template"]["spec"]["containers"][0]
    assert server["spec"]["replicas"] == 2
    assert serve["args"] == ["serve"]
    assert serve["resources"] == {"requests": {"cpu": "250m"}}
    assert serve["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert serve["livenessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "http",
        "scheme": "HTTPS",
    }
    assert server["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "ledgerd.dev/v1alpha1",
            "kind": "Ledgerd",
            "name": NAME,
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    config = cluster.get(CONFIG_MAPS, f"{NAME}-config")
    assert config is not None
    assert config["data"]["LEDGERD_EVENTS_PUBLISHER"] == "nats"
    assert config["data"]["LEDGERD_NATS_URL"] == "nats://nats:4222"
    assert config["data"]["LEDGERD_TLS_CERT_FILE"] == "/etc/ledgerd/tls/tls.crt"
    assert config["data"]["LEDGERD_TOKEN_ISSUER"] == "https://books.ledgers.svc:8080"

    # The Deployment controller reports the pods ready: the resource is Available.
    assert cluster.condition_is(NAME, "Available", "False")
    await cluster.patch(
        DEPLOYMENTS,
        SERVER,
        {"status": {"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": 2}},
    )
    await cluster.until("Available", lambda: cluster.condition_is(NAME, "Available", "True"))
    await cluster.until("settled", lambda: cluster.condition_is(NAME, "Progressing", "False"))
    assert cluster.condition_is(NAME, "Degraded", "False")
    status = (cluster.get(LEDGERDS, NAME) or {})["status"]
    assert status["observedGeneration"] == 1
    assert status["deployed"] == {"image": "registry.example/ledgerd", "version": "1.0.0"}


async def test_version_bump_migrates_again_then_rolls(cluster: Cluster) -> None:
    await cluster.create(LEDGERDS, ledgerd(NAME, "1.0.0"))
    await _deployed(cluster, "1.0.0")

    bumped = ledgerd(NAME, "1.1.0", generation=2)
    await cluster.patch(LEDGERDS, NAME, {"metadata": {"generation": 2}, "spec": bumped["spec"]})
    await _migrate(cluster, "1.1.0", {"status": {"active": 1}})
    await cluster.until("Migrated=False", lambda: cluster.condition_is(NAME, "Migrated", "False"))
    # The old version keeps serving while the new one migrates.
    assert _image(cluster, SERVER) == "registry.example/ledgerd:1.0.0"

    await _deployed(cluster, "1.1.0")
    await cluster.until(
        "gen 2",
        lambda: (
            (cluster.get(LEDGERDS, NAME) or {}).get("status", {}).get("observedGeneration") == 2
        ),
    )
    assert len(cluster.names(JOBS)) == 2


async def test_failed_migration_degrades_and_holds_the_rollout(cluster: Cluster) -> None:
    await cluster.create(LEDGERDS, ledgerd(NAME, "1.0.0"))
    await _deployed(cluster, "1.0.0")

    bumped = ledgerd(NAME, "2.0.0", generation=2)
    await cluster.patch(LEDGERDS, NAME, {"metadata": {"generation": 2}, "spec": bumped["spec"]})
    await _migrate(cluster, "2.0.0", FAILED)
    await cluster.until("Degraded", lambda: cluster.condition_is(NAME, "Degraded", "True"))
    degraded = cluster.condition(NAME, "Degraded")
    assert degraded is not None
    assert degraded["reason"] == "MigrationFailed"
    assert cluster.condition_is(NAME, "Migrated", "False")
    assert _image(cluster, SERVER) == "registry.example/ledgerd:1.0.0"
    assert _image(cluster, WORKER) == "registry.example/ledgerd:1.0.0"

    # Drift while degraded: a deleted Deployment comes back at the version that still serves.
    await cluster.delete(DEPLOYMENTS, SERVER)
    await cluster.until("server recreated", lambda: _image(cluster, SERVER) is not None)
    assert _image(cluster, SERVER) == "registry.example/ledgerd:1.0.0"

    # The way to retry (docs/deploy.md): delete the failed Job; the operator runs it again.
    await cluster.delete(JOBS, _one_job(cluster, "2.0.0"))
    await cluster.until("migrating again", lambda: cluster.condition_is(NAME, "Degraded", "False"))
    assert cluster.condition_is(NAME, "Migrated", "False")
    await _deployed(cluster, "2.0.0")


async def test_failed_first_migration_creates_no_deployment(cluster: Cluster) -> None:
    await cluster.create(LEDGERDS, ledgerd(NAME, "1.0.0"))
    await _migrate(cluster, "1.0.0", FAILED)
    await cluster.until("Degraded", lambda: cluster.condition_is(NAME, "Degraded", "True"))
    assert cluster.condition_is(NAME, "Available", "False")
    assert cluster.names(DEPLOYMENTS) == set()


async def test_a_deleted_deployment_is_recreated(cluster: Cluster) -> None:
    await cluster.create(LEDGERDS, ledgerd(NAME, "1.0.0"))
    await _deployed(cluster, "1.0.0")

    await cluster.delete(DEPLOYMENTS, WORKER)
    assert WORKER not in cluster.names(DEPLOYMENTS)
    await cluster.until("worker recreated", lambda: WORKER in cluster.names(DEPLOYMENTS))
    # Recreated, not re-migrated: the version's Job is still the one that succeeded.
    assert len(cluster.names(JOBS)) == 1


async def test_deletion_leaves_the_children_to_the_garbage_collector(cluster: Cluster) -> None:
    await cluster.create(LEDGERDS, ledgerd(NAME, "1.0.0"))
    await _deployed(cluster, "1.0.0")

    # No finalizer holds the resource: deletion is immediate even with the operator down.
    await cluster.delete(LEDGERDS, NAME)
    await cluster.until("resource gone", lambda: cluster.get(LEDGERDS, NAME) is None)
    children = [
        cluster.get(resource, name)
        for resource in (JOBS, DEPLOYMENTS, SERVICES, CONFIG_MAPS, BUDGETS)
        for name in cluster.names(resource)
    ]
    assert len(children) == 6  # Job, 2 Deployments, Service, ConfigMap, budget
    for child in children:
        assert child is not None
        owners = child["metadata"]["ownerReferences"]
        assert [(o["uid"], o["controller"]) for o in owners] == [("uid-1", True)]

    # The operator stops reconciling it: a child deleted now is not recreated.
    await cluster.delete(DEPLOYMENTS, SERVER)
    await cluster.until("still gone", lambda: SERVER not in cluster.names(DEPLOYMENTS))
