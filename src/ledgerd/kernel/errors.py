"""Stable error codes shared by every context, and the error every context raises."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class ErrorCode(StrEnum):
    """The codes every context shares; their spelling is part of the API.

    A context's own codes (what its rules refuse) live in that context, as a StrEnum of its
    own, and reach the transports through the table the context registers with them.
    """

    VALIDATION_FAILED = "VALIDATION_FAILED"
    # A concurrent writer won; raised by the unit of work, which every context writes through.
    CONCURRENCY_CONFLICT = "CONCURRENCY_CONFLICT"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    OVERLOADED = "OVERLOADED"
    # Something the service needs (its database) is out of reach; nothing was written.
    UNAVAILABLE = "UNAVAILABLE"
    # The work may or may not have been written (the connection was lost at COMMIT, or the
    # commit did not finish within the grace): retry with the same idempotency key, or look
    # the key up. The only error that does not mean "nothing was written".
    OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"
    # No access token, or one that is malformed or refused: the caller is not known. Raised by
    # the request pipeline's authentication, whichever context the call was for.
    UNAUTHENTICATED = "UNAUTHENTICATED"
    # The caller is known, but its token lacks the scope the call needs (named in the details).
    INSUFFICIENT_SCOPE = "INSUFFICIENT_SCOPE"


# The detail an OVERLOADED, UNAVAILABLE or OUTCOME_UNKNOWN error carries: seconds to wait
# before retrying. The transports also send it as their own retry hint (gRPC RetryInfo, HTTP
# Retry-After).
RETRY_AFTER_DETAIL = "retry_after_seconds"
# How long a client should wait before retrying after an outage or an unknown outcome.
OUTAGE_RETRY_AFTER_S = 1.0


class LedgerdError(Exception):
    """A domain error: a stable code, a human message and string details.

    ``code`` is a member of the kernel's `ErrorCode` or of a context's own code enum.
    """

    def __init__(
        self, code: StrEnum, message: str, details: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details: Mapping[str, str] = MappingProxyType(dict(details or {}))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LedgerdError):
            return NotImplemented
        return (self.code, self.message, dict(self.details)) == (
            other.code,
            other.message,
            dict(other.details),
        )

    def __hash__(self) -> int:
        return hash((self.code, self.message))

    def __repr__(self) -> str:
        return f"LedgerdError({self.code!s}, {self.message!r})"


def validation_error(field: str, message: str) -> LedgerdError:
    return LedgerdError(ErrorCode.VALIDATION_FAILED, f"{field}: {message}", {"field": field})


class ConcurrencyConflictError(LedgerdError):
    """Raised by adapters when a concurrent writer won; the unit of work is retried."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.CONCURRENCY_CONFLICT, message)


def unavailable(what: str, retry_after_s: float = OUTAGE_RETRY_AFTER_S) -> LedgerdError:
    """``what`` cannot be reached now: a definite failure (nothing written), worth a retry."""
    return LedgerdError(
        ErrorCode.UNAVAILABLE,
        f"{what} is unavailable; nothing was written, retry shortly",
        {RETRY_AFTER_DETAIL: f"{retry_after_s:g}"},
    )


class OutcomeUnknownError(LedgerdError):
    """The work may have been written or not; the client retries with the same key."""

    def __init__(self, why: str, retry_after_s: float = OUTAGE_RETRY_AFTER_S) -> None:
        super().__init__(
            ErrorCode.OUTCOME_UNKNOWN,
            f"{why}: the outcome is unknown; retry with the same idempotency key, or look it up",
            {RETRY_AFTER_DETAIL: f"{retry_after_s:g}"},
        )
