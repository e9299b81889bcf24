"""gRPC server reflection in both versions of its protocol: ``v1`` and ``v1alpha``.

grpcio-reflection (1.85, the newest) serves ``grpc.reflection.v1alpha`` only, while current
clients (grpcurl, Postman) ask for ``grpc.reflection.v1`` first. The v1 protocol is v1alpha
under another package name: the same messages with the same field numbers, so the same bytes
on the wire. So the library's servicer answers both: it is registered under both names with
v1alpha's (de)serialisers, and a v1 file descriptor, derived from v1alpha's by renaming its
package, joins the descriptor pool so that the service can describe itself by either name.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1_PACKAGE = "grpc.reflection.v1"
V1_FILE = "grpc/reflection/v1/reflection.proto"
V1_SERVICE_NAME = f"{V1_PACKAGE}.ServerReflection"
V1ALPHA_SERVICE_NAME: str = reflection.SERVICE_NAME
SERVICE_NAMES = (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)


def enable_reflection(
    server: grpc.aio.Server,
    service_names: Iterable[str],
    pool: descriptor_pool.DescriptorPool | None = None,
) -> None:
    """Serve reflection for ``service_names`` (and itself, both versions) on ``server``.

    ``pool`` is where the services' descriptors are (protobuf's default pool if None); the v1
    descriptor is added to it once.
    """
    pool = descriptor_pool.Default() if pool is None else pool
    _add_v1_descriptor(pool)
    servicer = reflection.aio.ReflectionServicer((*service_names, *SERVICE_NAMES), pool=pool)
    info = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        tuple(
            grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": info})
            for name in SERVICE_NAMES
        )
    )


def v1_file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """``grpc/reflection/v1/reflection.proto``: v1alpha's file under the v1 package."""
    v1 = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(v1)
    alpha_prefix = f".{v1.package}."
    v1_prefix = f".{V1_PACKAGE}."

    def renamed(type_name: str) -> str:
        if type_name.startswith(alpha_prefix):
            return v1_prefix + type_name.removeprefix(alpha_prefix)
        return type_name

    def rename_fields(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
        for message in messages:
            for field in message.field:
                if field.HasField("type_name"):  # scalars have none: an empty one is invalid
                    field.type_name = renamed(field.type_name)
            rename_fields(message.nested_type)

    v1.name = V1_FILE
    v1.package = V1_PACKAGE
    # v1alpha's options name v1alpha's language packages and mark it deprecated: not v1's.
    v1.ClearField("options")
    rename_fields(v1.message_type)
    for service in v1.service:
        for method in service.method:
            method.input_type = renamed(method.input_type)
            method.output_type = renamed(method.output_type)
    return v1


def _add_v1_descriptor(pool: descriptor_pool.DescriptorPool) -> None:
    try:
        pool.FindFileByName(V1_FILE)
    except KeyError:
        pool.AddSerializedFile(v1_file_descriptor().SerializeToString())
