"""The manifests in deploy/ and those the operator writes, checked against Kubernetes' schemas.

The schemas are Kubernetes' own OpenAPI definitions as JSON Schema, shipped offline by the
kubernetes-validate package (strict: an unknown field is an error, as `kubectl apply
--validate=strict` makes it). A `Ledgerd` resource is checked against the CRD's own schema.
"""

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from ledgerd_operator import manifests
from ledgerd_operator.manifests import Owner
from ledgerd_operator.spec import parse_spec

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# The oldest Kubernetes release still supported upstream when this was written; the schemas of
# older releases would reject nothing the manifests use, newer ones may add fields only.
KUBERNETES_VERSION = "1.33"
MANIFEST_FILES = sorted([*DEPLOY.glob("kubernetes/*.yaml"), *DEPLOY.glob("operator/*.yaml")])


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _validate(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def _crd_schema() -> dict[str, Any]:
    (crd,) = _documents(DEPLOY / "operator" / "crd.yaml")
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _example() -> dict[str, Any]:
    (example,) = _documents(DEPLOY / "operator" / "example.yaml")
    return example


@pytest.mark.parametrize("path", MANIFEST_FILES, ids=lambda path: path.name)
def test_deploy_manifests_match_the_kubernetes_schemas(path: Path) -> None:
    documents = _documents(path)
    assert documents
    for document in documents:
        if document["kind"] == "Ledgerd":
            jsonschema.validate(document, _crd_schema())
        else:
            _validate(document)


def test_the_plain_manifests_cover_every_child_the_operator_makes() -> None:
    kinds = {doc["kind"] for path in DEPLOY.glob("kubernetes/*.yaml") for doc in _documents(path)}
    assert kinds == {"ConfigMap", "Job", "Deployment", "Service", "PodDisruptionBudget"}


def test_the_operators_children_match_the_kubernetes_schemas() -> None:
    owner = Owner(name="books", namespace="ledgers", uid="0b6c1b2e")
    spec = parse_spec(_example()["spec"])
    children = [
        manifests.config_map(owner, spec),
        manifests.migration_job(owner, spec),
        manifests.server_deployment(owner, spec),
        manifests.worker_deployment(owner, spec),
        manifests.service(owner),
        manifests.disruption_budget(owner),
    ]
    for child in children:
        _validate(child)


def test_a_strict_schema_check_catches_a_misspelt_field() -> None:
    # The check itself can fail: strict schemas reject a field Kubernetes does not know.
    owner = Owner(name="books", namespace="ledgers", uid="0b6c1b2e")
    job = manifests.migration_job(owner, parse_spec(_example()["spec"]))
    job["spec"]["backofLimit"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(job)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version", "1.0 beta"),
        ("image", "registry.example.com/ledgerd:1.0"),
        ("worker", {"replicas": 2}),
        ("events", {"publisher": "carrier-pigeon"}),
        ("serve", {"replicas": -1}),
        ("serve", {"resources": {"requests": {"cpu": "a lot"}}}),
        ("tls", {"secret": "ledgerd-tls"}),
    ],
)
def test_the_crd_schema_refuses_a_bad_spec(field: str, value: object) -> None:
    resource = _example()
    resource["spec"][field] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(resource, _crd_schema())


def test_the_crd_schema_requires_a_database_secret() -> None:
    resource = _example()
    del resource["spec"]["database"]
    with pytest.raises(jsonschema.ValidationError, match="database"):
        jsonschema.validate(resource, _crd_schema())
