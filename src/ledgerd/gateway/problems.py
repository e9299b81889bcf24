"""What the gateway tells a client about a failure: one mapping for answers and for streams.

Before an answer starts, a failure is a problem response (its status, a JSON body
``{"code", "message", "details"}`` and maybe headers); once an NDJSON stream has started, the
same body becomes its last line. Both come from :func:`problem_of`.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field

from starlette.responses import JSONResponse

from ledgerd.gateway.invoker import RemoteCallError
from ledgerd.gateway.router import BadPathError, MethodNotAllowedError, RouteNotFoundError
from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.platform.api.authentication import ERROR_DETAIL, SCOPE_DETAIL
from ledgerd.platform.api.errors import ERROR_CODES, http_status_of_grpc, retry_after_seconds
from ledgerd.platform.api.pipeline import UnexpectedError
from ledgerd.platform.throttled_log import ThrottledLog

log = logging.getLogger("ledgerd.access")
# The protection space a bearer challenge names (RFC 9110, 11.5).
REALM = "ledgerd"
# What RFC 6750 §3 forbids in its quoted values (scope tokens, error codes): quotes, backslashes,
# controls, non-ASCII.
_UNQUOTABLE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


@dataclass(frozen=True, slots=True)
class Problem:
    status: int
    code: str
    message: str
    details: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def body(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "details": self.details}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def bearer_challenge(error: LedgerdError) -> str | None:
    """RFC 6750 §3's ``WWW-Authenticate`` for an authentication refusal, else None.

    Built from the error's code and details alone, so a refusal forwarded from another ledgerd
    over gRPC gets the same challenge as one made here.
    """
    if error.code == ErrorCode.UNAUTHENTICATED:
        # No error code when no credential was presented (RFC 6750 §3.1).
        error_code = error.details.get(ERROR_DETAIL)
        extra = "" if error_code is None else f', error="{_quotable(error_code)}"'
        return f'Bearer realm="{REALM}"{extra}'
    if error.code == ErrorCode.INSUFFICIENT_SCOPE:
        scope = error.details.get(SCOPE_DETAIL)
        extra = "" if scope is None else f', scope="{_quotable(scope)}"'
        return f'Bearer realm="{REALM}", error="insufficient_scope"{extra}'
    return None


def _quotable(text: str) -> str:
    """``text`` without what could end a quoted string or the header (it comes from details)."""
    return _UNQUOTABLE.sub("", text)


def problem_of(error: Exception, request_id: str, unexpected: ThrottledLog) -> Problem:
    """The problem ``error`` is for the client; an unexpected one is logged, not shown.

    A call's own failures were classified by the call pipeline (a bug there is an
    :class:`UnexpectedError`, logged already). What is left to log here is a bug in the
    gateway's own work around the call (routing, transcoding, rendering): ``unexpected`` logs
    the first of each kind per interval in full and counts the rest, so a failure that hits
    every request cannot flood the log.
    """
    if isinstance(error, LedgerdError):
        headers = {}
        retry_after = retry_after_seconds(error)
        if retry_after is not None:
            # Retry-After takes whole seconds (RFC 9110, 10.2.3); the exact hint is in details.
            headers["retry-after"] = str(max(1, math.ceil(retry_after)))
        challenge = bearer_challenge(error)
        if challenge is not None:
            headers["www-authenticate"] = challenge
        status = ERROR_CODES.transport(error.code).http
        return Problem(status, str(error.code), error.message, dict(error.details), headers)
    if isinstance(error, RouteNotFoundError):
        return Problem(404, "ROUTE_NOT_FOUND", str(error))
    if isinstance(error, MethodNotAllowedError):
        return Problem(405, "METHOD_NOT_ALLOWED", str(error))
    if isinstance(error, BadPathError):
        return Problem(400, str(ErrorCode.VALIDATION_FAILED), str(error))
    if isinstance(error, RemoteCallError):
        return Problem(http_status_of_grpc(error.code), error.code.name, error.message)
    if not isinstance(error, UnexpectedError):
        unexpected.unexpected(error, request_id)
        error = UnexpectedError(request_id)
    return Problem(500, "INTERNAL", error.message)
