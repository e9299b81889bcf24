"""Turn a domain error into a gRPC status carrying ``google.rpc.ErrorInfo``.

The status message is the human message; ErrorInfo's ``reason`` is the stable code and its
metadata the error's details, so clients branch on the reason, never on the text.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from ledgerd.kernel.errors import LedgerdError
from ledgerd.platform.api.errors import ERROR_CODES, ERROR_DOMAIN, retry_after_seconds


class _Status(grpc.Status):
    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        trailing_metadata: tuple[tuple[str, str | bytes], ...],
    ) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


def rpc_status_of(
    error: LedgerdError, trailing_metadata: tuple[tuple[str, str], ...] = ()
) -> grpc.Status:
    """The status to abort with: code, message, ErrorInfo, plus ``trailing_metadata``."""
    info = error_details_pb2.ErrorInfo(
        reason=str(error.code), domain=ERROR_DOMAIN, metadata=dict(error.details)
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    details = [detail]
    retry_after = retry_after_seconds(error)
    if retry_after is not None:
        hint = any_pb2.Any()
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(round(retry_after * 1000))
        hint.Pack(retry)
        details.append(hint)
    status = status_pb2.Status(
        code=ERROR_CODES.transport(error.code).grpc.value[0], message=error.message, details=details
    )
    packed = rpc_status.to_status(status)
    return _Status(packed.code, packed.details, (*packed.trailing_metadata, *trailing_metadata))


def error_of(status: status_pb2.Status) -> LedgerdError | None:
    """The domain error a status carries, if it carries ledgerd's ErrorInfo."""
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.domain == ERROR_DOMAIN:
            code = ERROR_CODES.code_of(info.reason)
            if code is None:
                return None
            return LedgerdError(code, status.message, dict(info.metadata))
    return None
