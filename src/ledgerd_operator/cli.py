"""`ledgerd-operator`: run the operator (in its pod, or locally against a kubeconfig)."""

import argparse
import asyncio
import logging
import os

_NAMESPACES_ENV = "LEDGERD_OPERATOR_NAMESPACES"
_DEFAULT_RESYNC_SECONDS = 10.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledgerd-operator",
        description="Reconcile Ledgerd resources (ledgerd.dev/v1alpha1) into a migration Job, "
        "the server and worker Deployments, a Service, a ConfigMap and a PodDisruptionBudget.",
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        help=f"watch this namespace (repeatable; default: ${_NAMESPACES_ENV}, "
        "comma-separated, else the whole cluster)",
    )
    parser.add_argument(
        "--resync-seconds",
        type=float,
        default=_DEFAULT_RESYNC_SECONDS,
        help="how often each resource is reconciled even when nothing changed (drift)",
    )
    parser.add_argument(
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        help="kopf's liveness endpoint, for the operator pod's probe",
    )
    parser.add_argument("--verbose", action="store_true", help="log at DEBUG level")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        # Imported here, so that without the extra `--help` still answers and the error says why.
        import kopf  # noqa: PLC0415

        from ledgerd_operator.handlers import build_registry  # noqa: PLC0415
    except ImportError as error:
        message = (
            f"ledgerd-operator needs the operator extra: pip install 'ledgerd[operator]' ({error})"
        )
        raise SystemExit(message) from error
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    namespaces = args.namespace or [
        name.strip() for name in os.environ.get(_NAMESPACES_ENV, "").split(",") if name.strip()
    ]
    settings = kopf.OperatorSettings()
    # One operator replica at a time (its Deployment's Recreate strategy sees to it), so
    # kopf's peering, which needs a cluster-wide resource of its own, is off.
    settings.peering.standalone = True
    asyncio.run(
        kopf.operator(
            registry=build_registry(resync_seconds=args.resync_seconds),
            settings=settings,
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=args.liveness,
        )
    )
