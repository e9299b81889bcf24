"""Services made up on the spot, annotated with the HTTP rules a test needs."""

from google.protobuf import descriptor_pb2, descriptor_pool, text_format
from google.protobuf.descriptor import ServiceDescriptor

from ledgerd.gateway.descriptors import load_descriptor_set


def service_with(*rules: str, request: str = "CapturePendingRequest") -> ServiceDescriptor:
    """``test.bad.Bad`` with one method per rule (Call0, Call1, ...) over ledger.proto's types.

    Each rule is the body of a `google.api.http` option, as written in a .proto file.
    """
    pool = descriptor_pool.DescriptorPool()
    for file in load_descriptor_set().file:
        pool.Add(file)
    methods = [
        descriptor_pb2.MethodDescriptorProto(
            name=f"Call{index}",
            input_type=f".ledgerd.v1.{request}",
            output_type=".ledgerd.v1.Transfer",
            options=text_format.Parse(
                f"[google.api.http] {{ {rule} }}", descriptor_pb2.MethodOptions()
            ),
        )
        for index, rule in enumerate(rules)
    ]
    pool.Add(
        descriptor_pb2.FileDescriptorProto(
            name="test/bad.proto",
            package="test.bad",
            syntax="proto3",
            dependency=["ledgerd/v1/ledger.proto"],
            service=[descriptor_pb2.ServiceDescriptorProto(name="Bad", method=methods)],
        )
    )
    return pool.FindServiceByName("test.bad.Bad")
