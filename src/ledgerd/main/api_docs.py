"""ledgerd's own API reference: the one call that both `make generate` and the server make.

``openapi.build_openapi`` knows nothing of ledgerd; this module supplies what is ledgerd's:
the shipped descriptor set, the table of error codes and their HTTP statuses, the OAuth2
scheme (identity's scopes and endpoints), and what the enabled contexts' services declare: the
rules their request fields are checked by, one example call per operation and the scope each
needs. It lives in the composition root because those are the contexts',
which the gateway may not import. Keeping both callers on this one function is what makes the
served document equal docs/openapi.yaml.

    python -m ledgerd.main.api_docs [yaml|json|html]   print the reference
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from google.protobuf import descriptor_pb2

from ledgerd.gateway.descriptors import load_descriptor_set
from ledgerd.gateway.docs_page import render_docs_page
from ledgerd.gateway.json_schema import JsonObject
from ledgerd.gateway.openapi import openapi_for, openapi_json, openapi_yaml
from ledgerd.gateway.openapi_security import OAuth2Security
from ledgerd.identity.domain.scopes import SCOPE_MEANINGS
from ledgerd.identity.entrypoints.metadata import AUTHORIZE_PATH, TOKEN_PATH
from ledgerd.kernel.errors import ErrorCode
from ledgerd.main.bounded_context import (
    GrpcService,
    merged_access,
    merged_examples,
    merged_rules,
    services_of,
)
from ledgerd.main.contexts import ENABLED_CONTEXTS
from ledgerd.main.error_codes import ERROR_CODES


def error_statuses() -> dict[str, int]:
    """Each stable error code the REST API can answer with, and its HTTP status.

    The kernel's codes and those of the contexts that serve gRPC services: a context without
    one (identity, whose codes its OAuth2 endpoints answer in RFC 6749's shape) adds no
    response to the API's operations.
    """
    served = {
        code for context in ENABLED_CONTEXTS if context.services for code in context.error_codes
    }
    return {
        str(code): int(spec.transport.http)
        for code, spec in ERROR_CODES
        if isinstance(code, ErrorCode) or code in served
    }


def ledgerd_openapi(
    descriptor_set: descriptor_pb2.FileDescriptorSet | None = None,
) -> JsonObject:
    """The OpenAPI document of ledgerd's REST API.

    ``descriptor_set`` defaults to the one shipped in the package; `make generate` passes the
    one it has just compiled.
    """
    services = services_of(ENABLED_CONTEXTS)
    return openapi_for(
        descriptor_set or load_descriptor_set(),
        error_statuses=error_statuses(),
        rules=merged_rules(services),
        examples=merged_examples(services),
        security=oauth2_security(services),
    )


def oauth2_security(services: Sequence[GrpcService]) -> OAuth2Security:
    """Identity's scopes and endpoints, and the scope each method of ``services`` needs."""
    return OAuth2Security(
        scopes={str(scope): meaning for scope, meaning in SCOPE_MEANINGS.items()},
        access=merged_access(services),
        token_url=TOKEN_PATH,
        authorization_url=AUTHORIZE_PATH,
    )


def main(argv: list[str]) -> int:
    renderers = {"yaml": openapi_yaml, "json": openapi_json, "html": render_docs_page}
    choice = argv[0] if argv else "yaml"
    if len(argv) > 1 or choice not in renderers:
        sys.stderr.write(f"usage: python -m ledgerd.main.api_docs [{'|'.join(renderers)}]\n")
        return 2
    sys.stdout.write(renderers[choice](ledgerd_openapi()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
