"""What the gateway tells a client about a failure: one mapping for answers and for streams.

Before an answer starts, a failure is a problem response (its status, a JSON body
``{"code", "message", "details"}`` and maybe headers); once an NDJSON stream has started, the
same body becomes its last line. Both come from :func:`problem_of`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from starlette.responses import JSONResponse

from ledgerd.gateway.invoker import RemoteCallError
from ledgerd.gateway.router import BadPathError, MethodNotAllowedError, RouteNotFoundError
from ledgerd.kernel.errors import ErrorCode, LedgerdError
from ledgerd.platform.api.errors import TRANSPORT, http_status_of_grpc, retry_after_seconds
from ledgerd.platform.throttled_log import ThrottledLog

log = logging.getLogger("ledgerd.access")


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


def problem_of(error: Exception, request_id: str, unexpected: ThrottledLog) -> Problem:
    """The problem ``error`` is for the client; an unexpected one is logged, not shown.

    ``unexpected`` logs the first unexpected error of each kind per interval in full and
    counts the rest: a failure that hits every request must not flood the log.
    """
    if isinstance(error, LedgerdError):
        headers = {}
        retry_after = retry_after_seconds(error)
        if retry_after is not None:
            # Retry-After takes whole seconds (RFC 9110, 10.2.3); the exact hint is in details.
            headers["retry-after"] = str(max(1, math.ceil(retry_after)))
        status = TRANSPORT[error.code].http
        return Problem(status, str(error.code), error.message, dict(error.details), headers)
    if isinstance(error, RouteNotFoundError):
        return Problem(404, "ROUTE_NOT_FOUND", str(error))
    if isinstance(error, MethodNotAllowedError):
        return Problem(405, "METHOD_NOT_ALLOWED", str(error))
    if isinstance(error, BadPathError):
        return Problem(400, str(ErrorCode.VALIDATION_FAILED), str(error))
    if isinstance(error, RemoteCallError):
        return Problem(http_status_of_grpc(error.code), error.code.name, error.message)
    unexpected.unexpected(error, request_id)
    return Problem(500, "INTERNAL", f"internal error; request id {request_id}")
