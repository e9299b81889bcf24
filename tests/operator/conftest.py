"""kopf running the operator in-process against kmock's Kubernetes API emulator.

No API server can run here, so the operator talks to an emulator: kmock's KubernetesEmulator,
an in-memory store of objects behind the Kubernetes REST paths (list, watch, get, create,
merge-patch, delete). It runs no controllers: no Job runs, no Deployment gets pods, nothing is
garbage collected. The tests play those controllers by patching the children's status through
the same API, and assert what the operator wrote.
"""

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import kmock
import kopf
import pytest

from ledgerd_operator.handlers import build_registry
from ledgerd_operator.spec import API_VERSION, GROUP, PLURAL, VERSION

NAMESPACE = "ledgers"
LEDGERDS = f"{GROUP}/{VERSION}/{PLURAL}"
JOBS = "batch/v1/jobs"
DEPLOYMENTS = "apps/v1/deployments"
SERVICES = "v1/services"
CONFIG_MAPS = "v1/configmaps"
BUDGETS = "policy/v1/poddisruptionbudgets"
# Short, so that drift is noticed within a test's patience.
RESYNC_SECONDS = 0.2
WAIT_SECONDS = 10.0


def declare_resources(emulator: kmock.KubernetesEmulator) -> None:
    # kopf's discovery must find every resource it watches, plus these two: without them it
    # waits after discovery for CRDs and namespaces to appear.
    emulator.resources["v1/namespaces"] = kmock.ResourceInfo(kind="Namespace", namespaced=False)
    emulator.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = kmock.ResourceInfo(
        kind="CustomResourceDefinition", namespaced=False
    )
    emulator.resources[LEDGERDS] = kmock.ResourceInfo(
        kind="Ledgerd",
        singular="ledgerd",
        namespaced=True,
        # kopf writes status through the subresource when discovery lists it, as it should.
        subresources={"status"},
        verbs={"list", "watch", "get", "patch", "create", "delete"},
    )
    for resource, kind in [
        (JOBS, "Job"),
        (DEPLOYMENTS, "Deployment"),
        (SERVICES, "Service"),
        (CONFIG_MAPS, "ConfigMap"),
        (BUDGETS, "PodDisruptionBudget"),
        ("v1/events", "Event"),
    ]:
        emulator.resources[resource] = kmock.ResourceInfo(kind=kind, namespaced=True)


class Cluster:
    """The emulator as the tests use it: the API over HTTP, the stored objects to assert on."""

    def __init__(self, emulator: kmock.KubernetesEmulator) -> None:
        self.emulator = emulator

    def _path(self, resource: str, name: str | None = None) -> str:
        group_version, plural = resource.rsplit("/", 1)
        prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        path = f"{prefix}/namespaces/{NAMESPACE}/{plural}"
        return f"{path}/{name}" if name else path

    async def create(self, resource: str, body: Mapping[str, Any]) -> None:
        response = await self.emulator.post(self._path(resource), json=body)
        assert response.status < 300, await response.text()

    async def patch(self, resource: str, name: str, body: Mapping[str, Any]) -> None:
        response = await self.emulator.patch(self._path(resource, name), json=body)
        assert response.status < 300, await response.text()

    async def delete(self, resource: str, name: str) -> None:
        response = await self.emulator.delete(self._path(resource, name))
        assert response.status < 300, await response.text()

    def get(self, resource: str, name: str) -> dict[str, Any] | None:
        key = (kmock.resource(resource), NAMESPACE, name)
        if key not in self.emulator.objects or self.emulator.objects[key].deleted:
            return None
        return dict(self.emulator.objects[key].raw)

    def names(self, resource: str) -> set[str]:
        return {
            name
            for (res, namespace, name), obj in self.emulator.objects.items()
            if res == kmock.resource(resource) and namespace == NAMESPACE and not obj.deleted
        }

    async def until(self, what: str, check: Callable[[], bool]) -> None:
        """Wait until `check()` holds (the operator works asynchronously)."""
        # Polling: the emulator offers no hook to wait on, and the checks are cheap.
        async with asyncio.timeout(WAIT_SECONDS):
            while not check():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert check(), what

    def condition(self, name: str, kind: str) -> dict[str, Any] | None:
        obj = self.get(LEDGERDS, name) or {}
        for entry in (obj.get("status") or {}).get("conditions") or []:
            if entry["type"] == kind:
                found: dict[str, Any] = entry
                return found
        return None

    def condition_is(self, name: str, kind: str, status: str) -> bool:
        entry = self.condition(name, kind)
        return entry is not None and entry["status"] == status


def ledgerd(name: str, version: str, uid: str = "uid-1", generation: int = 1) -> dict[str, Any]:
    """A `Ledgerd` resource as a user would write it (and uid, generation: the API server's)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Ledgerd",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": uid,
            "generation": generation,
            # kopf's patches test it; the emulator stores it but never moves it on.
            "resourceVersion": "1",
        },
        "spec": {
            "image": "registry.example/ledgerd",
            "version": version,
            "serve": {"replicas": 2, "resources": {"requests": {"cpu": "250m"}}},
            "worker": {"replicas": 1},
            "database": {"secretRef": {"name": "ledgerd-db", "key": "url"}},
            "events": {"publisher": "nats"},
            "tls": {"secretName": "ledgerd-tls"},
            "env": {"LEDGERD_NATS_URL": "nats://nats:4222"},
        },
    }


@pytest.fixture
async def cluster(kmock: kmock.KubernetesEmulator) -> AsyncIterator[Cluster]:
    """The emulator with the operator running against it until the test ends."""
    declare_resources(kmock)
    settings = kopf.OperatorSettings()
    settings.peering.standalone = True
    settings.posting.enabled = False
    # After a patch kopf waits for the object's new resourceVersion to come back through the
    # watch; the emulator never moves resourceVersion on, so each wait would run its full 5 s.
    settings.persistence.consistency_timeout = 0.1
    # A status patch cut short by the test's end is retried on this schedule, holding the stop.
    settings.networking.error_backoffs = [0.1]
    registry = build_registry(
        login=lambda _settings: kopf.ConnectionInfo(server=str(kmock.url)),
        resync_seconds=RESYNC_SECONDS,
    )
    stop = threading.Event()

    def run_operator() -> None:
        # A loop (and thread) of its own: kopf cancels, at exit, every task that appeared on its
        # loop while it ran, and on the test's loop those would be pytest's own.
        asyncio.run(
            kopf.operator(
                registry=registry,
                settings=settings,
                standalone=True,
                # Cluster-wide: with namespaces named, kopf lists /api/v1/namespaces, a path
                # kmock 0.8 fails to parse (it takes "namespaces" for a namespaced path).
                clusterwide=True,
                stop_flag=stop,
            )
        )

    operator = threading.Thread(target=run_operator, name="ledgerd-operator")
    operator.start()
    try:
        yield Cluster(kmock)
    finally:
        stop.set()
        # Joined off the test's loop, which serves the emulator the operator is still using.
        await asyncio.to_thread(operator.join, WAIT_SECONDS)
        assert not operator.is_alive(), "the operator did not stop"
