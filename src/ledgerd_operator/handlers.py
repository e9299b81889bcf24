"""The kopf handlers: when to reconcile a `Ledgerd` resource.

Every trigger runs the same level-based pass (reconcile.py): on create, on every spec change,
when the operator starts (resume), and on a timer, which is what notices drift — a deleted or
hand-edited Deployment, a Job that finished — between spec changes.
"""

import asyncio
import collections
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from ledgerd_operator.kube_api import KubeApi
from ledgerd_operator.manifests import Owner
from ledgerd_operator.reconcile import reconcile
from ledgerd_operator.spec import GROUP, PLURAL, VERSION, parse_spec

LoginFn = Callable[[kopf.OperatorSettings], kopf.ConnectionInfo]
DEFAULT_RESYNC_SECONDS = 10.0  # also the CLI default (cli.py)
# kopf's default of 60 s before retrying a failed handler is long for an API call that failed.
_RETRY_SECONDS = 5.0


def in_cluster_or_kubeconfig(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    """The pod's service account inside a cluster, else the local kubeconfig."""
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )
    if info is None:
        raise kopf.PermanentError("no service account and no kubeconfig: nothing to log in with")
    return info


class _Connection:
    """The API client made from the credentials of kopf's login, for the children."""

    def __init__(self) -> None:
        self.api: KubeApi | None = None

    def require(self) -> KubeApi:
        if self.api is None:
            raise kopf.TemporaryError("not logged in yet", delay=1)
        return self.api


def build_registry(
    login: LoginFn = in_cluster_or_kubeconfig,
    resync_seconds: float = DEFAULT_RESYNC_SECONDS,
) -> kopf.OperatorRegistry:
    """The operator's handlers in a registry of their own (tests log in to an emulator)."""
    registry = kopf.OperatorRegistry()
    connection = _Connection()
    # kopf runs a resource's timer beside its change handlers: one pass at a time per resource.
    passes: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)

    @kopf.on.login(registry=registry)
    async def log_in(settings: kopf.OperatorSettings, **_: object) -> kopf.ConnectionInfo:
        info = login(settings)
        if connection.api is not None:
            await connection.api.close()
        connection.api = KubeApi(info)
        return info

    @kopf.on.cleanup(registry=registry)
    async def close(**_: object) -> None:
        if connection.api is not None:
            await connection.api.close()

    async def reconcile_resource(
        body: kopf.Body, patch: kopf.Patch, status: Mapping[str, Any]
    ) -> None:
        meta = body.metadata
        owner = Owner(name=str(meta.name), namespace=str(meta.namespace), uid=str(meta.uid))
        generation = meta.get("generation")
        async with passes[owner.uid]:
            patch.status.update(
                await reconcile(
                    connection.require(),
                    owner,
                    parse_spec(body.spec),
                    int(generation) if generation is not None else None,
                    status,
                )
            )

    @kopf.on.resume(GROUP, VERSION, PLURAL, backoff=_RETRY_SECONDS, registry=registry)
    @kopf.on.create(GROUP, VERSION, PLURAL, backoff=_RETRY_SECONDS, registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, field="spec", backoff=_RETRY_SECONDS, registry=registry)
    async def on_change(
        body: kopf.Body, patch: kopf.Patch, status: kopf.Status, **_: object
    ) -> None:
        await reconcile_resource(body, patch, status)

    @kopf.timer(GROUP, VERSION, PLURAL, interval=resync_seconds, registry=registry)
    async def resync(body: kopf.Body, patch: kopf.Patch, status: kopf.Status, **_: object) -> None:
        # A pass already under way (a spec change) covers this tick; waiting for it would only
        # hold the timer, and the operator's shutdown, behind it.
        if not passes[str(body.metadata.uid)].locked():
            await reconcile_resource(body, patch, status)

    @kopf.on.delete(GROUP, VERSION, PLURAL, optional=True, registry=registry)
    async def forget(meta: kopf.Meta, **_: object) -> None:
        passes.pop(str(meta.uid), None)

    return registry
