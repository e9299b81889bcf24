"""The v1 reflection descriptor, derived from grpcio-reflection's v1alpha one."""

from __future__ import annotations

from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2

from ledgerd.platform.api.grpc_reflection import V1_FILE, V1_SERVICE_NAME, v1_file_descriptor


def test_the_v1_file_is_v1alpha_under_the_v1_package() -> None:
    v1 = v1_file_descriptor()

    assert (v1.name, v1.package) == (V1_FILE, "grpc.reflection.v1")
    assert b"v1alpha" not in v1.SerializeToString()  # no type still points at v1alpha
    alpha = reflection_pb2.DESCRIPTOR
    assert [m.name for m in v1.message_type] == list(alpha.message_types_by_name)


def test_it_builds_in_a_pool_of_its_own_with_the_same_fields() -> None:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(v1_file_descriptor().SerializeToString())

    service = pool.FindServiceByName(V1_SERVICE_NAME)
    (method,) = service.methods
    assert method.input_type.full_name == "grpc.reflection.v1.ServerReflectionRequest"
    alpha_request = reflection_pb2.ServerReflectionRequest.DESCRIPTOR
    assert [(f.name, f.number) for f in method.input_type.fields] == [
        (f.name, f.number) for f in alpha_request.fields
    ]
