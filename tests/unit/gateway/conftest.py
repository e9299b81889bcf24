"""Descriptors for the gateway tests: ledger.proto as shipped, and library.proto compiled here.

library.proto is compiled with protoc at test time, so the tests can read as the API they
exercise, in the .proto syntax, rather than as descriptor-building code.
"""

from pathlib import Path

import google.api
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import ServiceDescriptor
from grpc_tools import protoc

from ledgerd.gateway.comments import CommentIndex
from ledgerd.gateway.descriptors import load_descriptor_set, services_in
from ledgerd.gateway.json_schema import JsonObject
from ledgerd.gateway.openapi import openapi_for
from ledgerd.main.api_docs import ledgerd_openapi
from ledgerd.v1 import ledger_pb2

HERE = Path(__file__).parent
GOOGLEAPIS_ROOT = Path(next(iter(google.api.__path__))).parent.parent
WELL_KNOWN_ROOT = Path(protoc.__file__).parent / "_proto"


@pytest.fixture(scope="session")
def ledger_service() -> ServiceDescriptor:
    """LedgerService from the generated module: the descriptors the server itself uses."""
    return ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"]


@pytest.fixture(scope="session")
def ledger_comments() -> CommentIndex:
    return CommentIndex.from_descriptor_set(load_descriptor_set())


@pytest.fixture(scope="session")
def library_set(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    output = tmp_path_factory.mktemp("library") / "library.binpb"
    status = protoc.main(
        [
            "protoc",
            f"-I{HERE}",
            f"-I{GOOGLEAPIS_ROOT}",
            f"-I{WELL_KNOWN_ROOT}",
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={output}",
            str(HERE / "library.proto"),
        ]
    )
    assert status == 0, "protoc could not compile library.proto"
    return descriptor_pb2.FileDescriptorSet.FromString(output.read_bytes())


@pytest.fixture(scope="session")
def library_service(library_set: descriptor_pb2.FileDescriptorSet) -> ServiceDescriptor:
    (service,) = services_in(library_set)
    return service


@pytest.fixture(scope="session")
def ledger_document() -> JsonObject:
    """The OpenAPI document as the server builds it at run time."""
    return ledgerd_openapi()


@pytest.fixture(scope="session")
def library_document(library_set: descriptor_pb2.FileDescriptorSet) -> JsonObject:
    return openapi_for(library_set)
