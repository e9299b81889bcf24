"""Validating JSON against the schemas of a generated OpenAPI document (jsonschema-rs)."""

from collections.abc import Iterator
from typing import Any

import jsonschema_rs

from ledgerd.gateway.json_schema import JsonObject

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


def validator(document: JsonObject, schema: JsonObject) -> jsonschema_rs.Validator:
    """A validator for ``schema`` whose ``#/components/...`` references resolve in ``document``."""
    root = {"$schema": DRAFT_2020_12, "components": document["components"], **schema}
    return jsonschema_rs.validator_for(root, validate_formats=True)


def component(document: JsonObject, name: str) -> jsonschema_rs.Validator:
    return validator(document, {"$ref": f"#/components/schemas/{name}"})


def errors(validator: jsonschema_rs.Validator, instance: Any) -> list[str]:  # noqa: ANN401 - any JSON
    return [error.message for error in validator.iter_errors(instance)]


def walk(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:  # noqa: ANN401
    """Every (path, value) pair in a JSON document, depth first."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, (*path, str(index)))
