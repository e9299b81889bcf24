"""The OpenAPI 3.1 schema the API's document is validated against, in unit and e2e tests alike.

It is the OpenAPI Initiative's own (schemas/v3.1/schema.yaml), as bundled by schemathesis: it
cannot be fetched here, and should not need to be. With one correction: the schema types the
OAuth flows' URLs as absolute (``format: uri``), where the specification lets every URL be a
relative reference, resolved against the server (OAS 3.1 §4.6; the schema's mistake is
OAI/OpenAPI-Specification issue 4327). ledgerd's token and authorization URLs are relative to
the server the document is fetched from.
"""

import copy

import jsonschema_rs
from schemathesis.specs.openapi.definitions import OPENAPI_31

from ledgerd.gateway.json_schema import JsonObject


def _corrected() -> JsonObject:
    schema: JsonObject = copy.deepcopy(OPENAPI_31)
    for flow in schema["$defs"]["oauth-flows"]["$defs"].values():
        for name, spec in flow.get("properties", {}).items():
            if name.endswith("Url"):
                spec["format"] = "uri-reference"
    return schema


def openapi_31_validator() -> jsonschema_rs.Validator:
    """A validator of OpenAPI 3.1 documents that checks formats too."""
    return jsonschema_rs.Draft202012Validator(_corrected(), validate_formats=True)
