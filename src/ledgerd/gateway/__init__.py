"""The REST gateway: HTTP routes and OpenAPI derived from the proto's `google.api.http` rules.

Nothing here is written per RPC: routes, schemas and the API reference page all come from
reflection over the protobuf descriptors, so the .proto files stay the single source of truth.
"""
