"""The one table mapping ledgerd's error codes onto gRPC statuses and HTTP statuses.

Both transports read this table, so a code means the same thing over gRPC and over REST.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

import grpc

from ledgerd.kernel.errors import RETRY_AFTER_DETAIL, ErrorCode, LedgerdError

ERROR_DOMAIN = "ledgerd"


@dataclass(frozen=True, slots=True)
class Transport:
    grpc: grpc.StatusCode
    http: HTTPStatus


_INVALID = Transport(grpc.StatusCode.INVALID_ARGUMENT, HTTPStatus.BAD_REQUEST)
_NOT_FOUND = Transport(grpc.StatusCode.NOT_FOUND, HTTPStatus.NOT_FOUND)
_EXISTS = Transport(grpc.StatusCode.ALREADY_EXISTS, HTTPStatus.CONFLICT)
# A well-formed request the ledger's current state refuses: the client must change something.
_REFUSED = Transport(grpc.StatusCode.FAILED_PRECONDITION, HTTPStatus.UNPROCESSABLE_ENTITY)
# Lost a race or aborted with others: the same request may succeed if sent again.
_ABORTED = Transport(grpc.StatusCode.ABORTED, HTTPStatus.CONFLICT)

_UNAVAILABLE = Transport(grpc.StatusCode.UNAVAILABLE, HTTPStatus.SERVICE_UNAVAILABLE)

TRANSPORT: dict[ErrorCode, Transport] = {
    ErrorCode.VALIDATION_FAILED: _INVALID,
    ErrorCode.LEDGER_NOT_FOUND: _NOT_FOUND,
    ErrorCode.ACCOUNT_NOT_FOUND: _NOT_FOUND,
    ErrorCode.TRANSFER_NOT_FOUND: _NOT_FOUND,
    ErrorCode.LEDGER_ALREADY_EXISTS: _EXISTS,
    ErrorCode.ACCOUNT_ALREADY_EXISTS: _EXISTS,
    ErrorCode.IDEMPOTENCY_CONFLICT: _EXISTS,
    ErrorCode.ASSET_MISMATCH: _REFUSED,
    ErrorCode.INSUFFICIENT_FUNDS: _REFUSED,
    ErrorCode.CREDIT_LIMIT_EXCEEDED: _REFUSED,
    ErrorCode.BALANCE_OVERFLOW: _REFUSED,
    ErrorCode.ACCOUNT_FROZEN: _REFUSED,
    ErrorCode.ACCOUNT_CLOSED: _REFUSED,
    ErrorCode.ACCOUNT_HAS_PENDING: _REFUSED,
    ErrorCode.TRANSFER_NOT_PENDING: _REFUSED,
    ErrorCode.PENDING_EXPIRED: _REFUSED,
    ErrorCode.CAPTURE_EXCEEDS_PENDING: _REFUSED,
    ErrorCode.TRANSFER_NOT_REVERSIBLE: _REFUSED,
    ErrorCode.TRANSFER_ALREADY_REVERSED: _REFUSED,
    ErrorCode.BATCH_ABORTED: _ABORTED,
    ErrorCode.CONCURRENCY_CONFLICT: _ABORTED,
    ErrorCode.DEADLINE_EXCEEDED: Transport(
        grpc.StatusCode.DEADLINE_EXCEEDED, HTTPStatus.GATEWAY_TIMEOUT
    ),
    # Refused unread because too much work is queued: the details carry retry_after_seconds
    # (also sent as google.rpc.RetryInfo over gRPC and as Retry-After over HTTP).
    ErrorCode.OVERLOADED: Transport(
        grpc.StatusCode.RESOURCE_EXHAUSTED, HTTPStatus.TOO_MANY_REQUESTS
    ),
    # Both retryable, with the same hint: UNAVAILABLE is what gRPC retry policies retry. An
    # unknown outcome retried with the same idempotency key is answered by the original.
    ErrorCode.UNAVAILABLE: _UNAVAILABLE,
    ErrorCode.OUTCOME_UNKNOWN: _UNAVAILABLE,
}


# The HTTP status for a gRPC status that carries no ledgerd error (a forwarded call failed in
# transport), after the mapping gRPC gateways conventionally use.
_HTTP_OF_GRPC = {
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.FAILED_PRECONDITION: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.OUT_OF_RANGE: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
    grpc.StatusCode.PERMISSION_DENIED: HTTPStatus.FORBIDDEN,
    grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: HTTPStatus.CONFLICT,
    grpc.StatusCode.ABORTED: HTTPStatus.CONFLICT,
    grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.TOO_MANY_REQUESTS,
    grpc.StatusCode.CANCELLED: HTTPStatus.REQUEST_TIMEOUT,
    grpc.StatusCode.UNIMPLEMENTED: HTTPStatus.NOT_IMPLEMENTED,
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: HTTPStatus.GATEWAY_TIMEOUT,
}


def http_status_of_grpc(code: grpc.StatusCode) -> HTTPStatus:
    return _HTTP_OF_GRPC.get(code, HTTPStatus.INTERNAL_SERVER_ERROR)


def retry_after_seconds(error: LedgerdError) -> float | None:
    """The retry hint an error carries, in seconds, if any."""
    text = error.details.get(RETRY_AFTER_DETAIL)
    try:
        return None if text is None else max(0.0, float(text))
    except ValueError:
        return None
