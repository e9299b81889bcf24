"""The catalogue mapping ledgerd's error codes onto gRPC statuses and HTTP statuses.

Each context owns its codes and registers ONE table of them (status per transport, and the
meaning docs/api.md prints); the codes every context shares (the kernel's `ErrorCode`) are
registered here. Both transports read the one catalogue, so a code means the same thing over
gRPC and over REST. Platform knows no context: the composition root registers their tables
(`ledgerd.main.error_codes`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from http import HTTPStatus
from typing import TypeVar

import grpc

from ledgerd.kernel.errors import RETRY_AFTER_DETAIL, ErrorCode, LedgerdError

ERROR_DOMAIN = "ledgerd"


@dataclass(frozen=True, slots=True)
class Transport:
    grpc: grpc.StatusCode
    http: HTTPStatus


# The kinds of failure a context's codes are mapped to, so that like codes answer alike.
INVALID = Transport(grpc.StatusCode.INVALID_ARGUMENT, HTTPStatus.BAD_REQUEST)
NOT_FOUND = Transport(grpc.StatusCode.NOT_FOUND, HTTPStatus.NOT_FOUND)
ALREADY_EXISTS = Transport(grpc.StatusCode.ALREADY_EXISTS, HTTPStatus.CONFLICT)
# A well-formed request the current state refuses: the client must change something.
REFUSED = Transport(grpc.StatusCode.FAILED_PRECONDITION, HTTPStatus.UNPROCESSABLE_ENTITY)
# Lost a race or aborted with others: the same request may succeed if sent again.
ABORTED = Transport(grpc.StatusCode.ABORTED, HTTPStatus.CONFLICT)
UNAVAILABLE = Transport(grpc.StatusCode.UNAVAILABLE, HTTPStatus.SERVICE_UNAVAILABLE)


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """How one code travels, and what it means to a client (a docs/api.md table cell)."""

    transport: Transport
    meaning: str


# One context's codes: every member of its code enum, with its spec.
ErrorTable = Mapping[StrEnum, ErrorSpec]
_Code = TypeVar("_Code", bound=StrEnum)


class ErrorCodeClashError(ValueError):
    """Two contexts registered the same spelling: a client could not tell them apart."""


class ErrorCatalogue:
    """Every registered code, by spelling, in the order the tables were registered."""

    def __init__(self) -> None:
        self._specs: dict[str, tuple[StrEnum, ErrorSpec]] = {}

    def register(self, table: Mapping[_Code, ErrorSpec]) -> None:
        """Add a context's table; refused whole if one of its spellings is taken already."""
        clashes = sorted(str(code) for code in table if str(code) in self._specs)
        if clashes:
            raise ErrorCodeClashError(f"error codes registered twice: {', '.join(clashes)}")
        for code, spec in table.items():
            self._specs[str(code)] = (code, spec)

    def transport(self, code: StrEnum) -> Transport:
        try:
            return self._specs[str(code)][1].transport
        except KeyError:
            raise LookupError(f"error code {code} is registered by no context") from None

    def code_of(self, spelling: str) -> StrEnum | None:
        """The code a client received spelled ``spelling``, if one is registered."""
        entry = self._specs.get(spelling)
        return None if entry is None else entry[0]

    def __iter__(self) -> Iterator[tuple[StrEnum, ErrorSpec]]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)


_RETRY_HINT = (
    " The details carry `retry_after_seconds`, also sent as `google.rpc.RetryInfo` over gRPC"
    " and `Retry-After` over HTTP."
)

SHARED_ERRORS: ErrorTable = {
    ErrorCode.VALIDATION_FAILED: ErrorSpec(
        INVALID,
        "The request is malformed or outside a documented limit; `details.field` names the field.",
    ),
    ErrorCode.CONCURRENCY_CONFLICT: ErrorSpec(
        ABORTED,
        "A concurrent writer won a race the server could not retry away; sending the same"
        " request again may succeed. But from UpdateAccountMetadata with `expected_version` it"
        " means the account is at another version now (`details.expected_version`,"
        " `details.actual_version`): the same request fails the same way, so read the account"
        " again and decide anew.",
    ),
    ErrorCode.DEADLINE_EXCEEDED: ErrorSpec(
        Transport(grpc.StatusCode.DEADLINE_EXCEEDED, HTTPStatus.GATEWAY_TIMEOUT),
        "The request's deadline passed before the work was done.",
    ),
    # Refused unread because too much work is queued: the details carry retry_after_seconds
    # (also sent as google.rpc.RetryInfo over gRPC and as Retry-After over HTTP).
    ErrorCode.OVERLOADED: ErrorSpec(
        Transport(grpc.StatusCode.RESOURCE_EXHAUSTED, HTTPStatus.TOO_MANY_REQUESTS),
        "Too much work is queued; the request was refused unread (see [overload](#overload))."
        + _RETRY_HINT,
    ),
    # Both retryable, with the same hint: UNAVAILABLE is what gRPC retry policies retry. An
    # unknown outcome retried with the same idempotency key is answered by the original.
    ErrorCode.UNAVAILABLE: ErrorSpec(UNAVAILABLE, "The database cannot be reached." + _RETRY_HINT),
    ErrorCode.OUTCOME_UNKNOWN: ErrorSpec(
        UNAVAILABLE,
        "The work may or may not have been written: retry with the same idempotency key, or"
        " look it up." + _RETRY_HINT,
    ),
    ErrorCode.UNAUTHENTICATED: ErrorSpec(
        Transport(grpc.StatusCode.UNAUTHENTICATED, HTTPStatus.UNAUTHORIZED),
        "No access token, or one that is malformed, expired or otherwise refused; over HTTP"
        " the answer carries `WWW-Authenticate: Bearer` (RFC 6750).",
    ),
    ErrorCode.INSUFFICIENT_SCOPE: ErrorSpec(
        Transport(grpc.StatusCode.PERMISSION_DENIED, HTTPStatus.FORBIDDEN),
        "The access token lacks the scope the call needs, named in `details.scope`.",
    ),
}

# The process's catalogue: the shared codes, then each context's, as the composition root
# registers them.
ERROR_CODES = ErrorCatalogue()
ERROR_CODES.register(SHARED_ERRORS)


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
